"""The long-connection client against the real sandbox on loopback (and a tiny fake frontier)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from rudder.feishu.frames import Frame, FrameMethod, decode_frame, encode_frame
from rudder.feishu.longconn import (
    ACK_FAILED,
    AckResult,
    ConnectionState,
    ConnectionStatus,
    LongConnection,
    Timings,
)
from rudder.feishu.longconn_connect import TOO_MANY_CONNECTIONS
from rudder.feishu.longconn_state import ACK_OK, ClientConfig, IllegalTransition, check_transition
from rudder.feishu.regions import Region
from rudder.sandbox import SandboxServer

CONTROL = "/_sandbox/api"
FAST = Timings(
    http_timeout_s=3,
    open_timeout_s=3,
    close_timeout_s=0.3,
    backoff_base_s=0.05,
    stop_grace_s=0.3,
    ping_interval_s=0.5,
    reconnect_interval_s=0.2,
    reconnect_nonce_s=0.05,
)


async def wait_until(
    check: Callable[[], bool], within: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Inbox:
    """An on_event that records in memory, then acks (the real one records durably)."""

    def __init__(self, answer: AckResult = ACK_OK) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer

    async def __call__(self, payload: bytes) -> AckResult:
        self.events.append(json.loads(payload))
        return self.answer

    def texts(self) -> list[str]:
        return [json.loads(e["event"]["message"]["content"])["text"] for e in self.events]


@dataclass
class Sandbox:
    server: SandboxServer
    control_http: httpx.AsyncClient
    http: httpx.AsyncClient  # what the clients under test use
    connections: list[LongConnection] = field(default_factory=list)
    tasks: list[asyncio.Task[ConnectionState]] = field(default_factory=list)

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.control_http.request(method, CONTROL + path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def settings(self, **changes: Any) -> None:
        await self.control("PATCH", "/settings", json=changes)

    async def bot_with_chat(self, name: str = "Bot") -> tuple[dict[str, Any], str, str]:
        app = await self.control("POST", "/apps", json={"name": name, "brand": "feishu"})
        user = (await self.control("POST", "/users", json={"name": f"user of {name}"}))["user_id"]
        body = {"type": "p2p", "user_ids": [user], "app_ids": [app["app_id"]]}
        chat = (await self.control("POST", "/chats", json=body))["chat_id"]
        return app, user, chat

    async def say(self, chat: str, user: str, text: str) -> str:
        answer = await self.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": text}
        )
        return str(answer["event_ids"][0])

    async def delivery(self, event_id: str) -> dict[str, Any]:
        items = (await self.control("GET", "/deliveries", params={"event_id": event_id}))["items"]
        assert len(items) == 1
        return dict(items[0])

    def start(
        self,
        app: dict[str, Any],
        on_event: Callable[[bytes], Awaitable[AckResult]],
        *,
        secret: str | None = None,
        timings: Timings = FAST,
        base_url: str | None = None,
        on_state: Callable[[ConnectionState], None] | None = None,
    ) -> LongConnection:
        conn = LongConnection(
            app["app_id"],
            app["app_secret"] if secret is None else secret,
            Region.FEISHU,
            http=self.http,
            on_event=on_event,
            on_state=on_state,
            base_url_override=base_url or self.server.url,
            timings=timings,
        )
        self.connections.append(conn)
        self.tasks.append(asyncio.create_task(conn.run()))
        return conn


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with (
        SandboxServer() as server,
        httpx.AsyncClient(base_url=server.url, timeout=10, trust_env=False) as control,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        sb = Sandbox(server, control, http)
        try:
            yield sb
        finally:
            await asyncio.gather(*(c.stop() for c in sb.connections))
            for task in sb.tasks:
                task.cancel()
            await asyncio.gather(*sb.tasks, return_exceptions=True)


def connected(conn: LongConnection) -> Callable[[], bool]:
    return lambda: conn.state.status is ConnectionStatus.CONNECTED


# -- delivery ---------------------------------------------------------------------------------


async def test_receives_a_message_and_acks_it(sandbox: Sandbox) -> None:
    app, user, chat = await sandbox.bot_with_chat()
    inbox = Inbox()
    conn = sandbox.start(app, inbox)
    await wait_until(connected(conn), what="connected")
    state = conn.state
    assert state.connected_since is not None and state.connection_id

    event_id = await sandbox.say(chat, user, "hello bot")

    await wait_until(lambda: len(inbox.events) == 1, what="the event")
    assert inbox.texts() == ["hello bot"]
    assert inbox.events[0]["header"]["event_id"] == event_id
    assert inbox.events[0]["header"]["app_id"] == app["app_id"]
    delivery = await sandbox.delivery(event_id)
    assert delivery["acked"] and delivery["attempts"] == 1
    assert conn.state.events == 1 and conn.state.last_event_at is not None


async def test_fragmented_event_is_reassembled(sandbox: Sandbox) -> None:
    await sandbox.settings(ws_fragment_size=64)
    app, user, chat = await sandbox.bot_with_chat()
    inbox = Inbox()
    conn = sandbox.start(app, inbox)
    await wait_until(connected(conn), what="connected")
    text = "a long message that will not fit in one frame " * 10

    event_id = await sandbox.say(chat, user, text)

    await wait_until(lambda: len(inbox.events) == 1, what="the reassembled event")
    assert inbox.texts() == [text]
    await asyncio.sleep(0.1)
    assert len(inbox.events) == 1 and conn.state.events == 1
    assert (await sandbox.delivery(event_id))["acked"]


async def test_failed_recording_is_acked_500_and_pushed_again(sandbox: Sandbox) -> None:
    await sandbox.settings(retry_ladder_s=[0.3])
    app, user, chat = await sandbox.bot_with_chat()
    inbox = Inbox(answer=ACK_FAILED)
    conn = sandbox.start(app, inbox)
    await wait_until(connected(conn), what="connected")

    event_id = await sandbox.say(chat, user, "try again")
    await wait_until(lambda: len(inbox.events) == 1, what="the first push")
    inbox.answer = ACK_OK
    await wait_until(lambda: len(inbox.events) == 2, what="the re-push")

    delivery = await sandbox.delivery(event_id)
    assert delivery["history"][0]["detail"] == "ack code 500"
    await wait_until(lambda: conn.state.events == 2)
    assert (await sandbox.delivery(event_id))["acked"]


async def test_on_event_raising_is_acked_500(sandbox: Sandbox) -> None:
    await sandbox.settings(retry_ladder_s=[60])
    app, user, chat = await sandbox.bot_with_chat()
    calls: list[bytes] = []

    async def broken(payload: bytes) -> AckResult:
        calls.append(payload)
        raise RuntimeError("database is down")

    conn = sandbox.start(app, broken)
    await wait_until(connected(conn), what="connected")
    event_id = await sandbox.say(chat, user, "hi")
    await wait_until(lambda: len(calls) == 1)
    for _ in range(50):
        history = (await sandbox.delivery(event_id))["history"]
        if history:
            break
        await asyncio.sleep(0.02)
    assert history[0]["detail"] == "ack code 500"
    assert conn.state.status is ConnectionStatus.CONNECTED


# -- reconnecting -------------------------------------------------------------------------------


async def test_dropped_connection_reconnects_and_still_receives(sandbox: Sandbox) -> None:
    app, user, chat = await sandbox.bot_with_chat()
    inbox = Inbox()
    seen: list[ConnectionStatus] = []
    conn = sandbox.start(app, inbox, on_state=lambda s: seen.append(s.status))
    await wait_until(connected(conn), what="connected")
    first_id = conn.state.connection_id

    await sandbox.control(
        "POST", "/faults", json={"kind": "drop_connections", "app_id": app["app_id"]}
    )
    await wait_until(lambda: conn.state.reconnects == 1 and connected(conn)(), what="the reconnect")
    assert ConnectionStatus.RECONNECTING in seen
    assert conn.state.connection_id != first_id

    await sandbox.say(chat, user, "still there?")
    await wait_until(lambda: inbox.texts() == ["still there?"], what="the event after reconnecting")


async def test_busy_endpoint_is_retried(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    # Code 1 = "system busy": the SDKs retry it (py ws/const.py).
    fault = {"kind": "fail_api", "api": "ws.endpoint", "code": 1, "http_status": 200, "count": 2}
    await sandbox.control("POST", "/faults", json=fault)
    errors: list[str | None] = []
    conn = sandbox.start(app, Inbox(), on_state=lambda s: errors.append(s.last_error))

    await wait_until(connected(conn), what="connected after two busy answers")
    assert any(e and "code 1" in e for e in errors)
    assert conn.state.failed_attempts == 0 and conn.state.reconnects == 0


async def test_reconnect_count_from_feishu_bounds_the_retries(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    fault = {"kind": "fail_api", "api": "ws.endpoint", "code": 1, "http_status": 200, "count": 100}
    await sandbox.control("POST", "/faults", json=fault)
    conn = sandbox.start(app, Inbox(), timings=Timings(**{**_fast(), "reconnect_count": 2}))

    final = await asyncio.wait_for(sandbox.tasks[-1], timeout=5)

    assert final.status is ConnectionStatus.FAILED
    assert final.last_error is not None and final.last_error.startswith("Gave up after 3 failed")
    assert conn.state == final


async def test_silent_socket_is_abandoned_by_the_watchdog(sandbox: Sandbox) -> None:
    app, user, chat = await sandbox.bot_with_chat()
    errors: list[str] = []
    async with FreezableProxy(sandbox.server.port) as proxy:
        inbox = Inbox()
        conn = sandbox.start(
            app,
            inbox,
            base_url=proxy.url,
            timings=Timings(**{**_fast(), "ping_interval_s": 0.2, "http_timeout_s": 0.5}),
            on_state=lambda s: errors.append(s.last_error or ""),
        )
        await wait_until(connected(conn), what="connected")
        started = time.monotonic()

        # Half-open TCP: no error, no bytes. The pooled keep-alive HTTP connection freezes too,
        # so the next discovery must time out rather than wedge (oapi-sdk-python#169).
        proxy.freeze()

        await wait_until(
            lambda: conn.state.reconnects == 1 and connected(conn)(), what="the watchdog"
        )
        assert time.monotonic() - started < 3.0
        assert any("two ping intervals" in e for e in errors)
        await proxy.close_frozen()  # let the sandbox forget the dead socket
        await wait_until(lambda: len(sandbox.server.sandbox.hub.live(app["app_id"])) == 1)
        await sandbox.say(chat, user, "after the watchdog")
        await wait_until(lambda: inbox.texts() == ["after the watchdog"])


async def test_client_config_from_pong_is_applied(sandbox: Sandbox) -> None:
    await sandbox.settings(ws_ping_interval=0.2)
    app, _, _ = await sandbox.bot_with_chat()
    conn = sandbox.start(app, Inbox(), timings=Timings(**{**_fast(), "ping_interval_s": None}))
    await wait_until(connected(conn), what="connected")
    assert conn.client_config.ping_interval == 0.2

    await sandbox.settings(ws_ping_interval=7, ws_reconnect_nonce=3)

    await wait_until(
        lambda: conn.client_config.ping_interval == 7.0, what="the pong's ClientConfig"
    )
    assert conn.client_config.reconnect_nonce == 0.05  # our override still wins


# -- fatal answers ------------------------------------------------------------------------------


async def test_bad_secret_fails_once_with_a_readable_reason(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    posts = 0

    async def count(request: httpx.Request) -> None:
        nonlocal posts
        posts += 1

    sandbox.http.event_hooks["request"].append(count)
    conn = sandbox.start(app, Inbox(), secret="not-the-secret")

    final = await asyncio.wait_for(sandbox.tasks[-1], timeout=3)

    assert final.status is ConnectionStatus.FAILED
    assert final.last_error is not None
    assert final.last_error.startswith("Feishu CN refused the app credentials (code 514")
    assert posts == 1
    await asyncio.sleep(0.3)
    assert posts == 1 and conn.state.status is ConnectionStatus.FAILED


async def test_51st_connection_is_fatal(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    fifty = [sandbox.start(app, Inbox()) for _ in range(50)]
    await wait_until(lambda: all(connected(c)() for c in fifty), within=15, what="50 connections")

    extra = sandbox.start(app, Inbox())
    final = await asyncio.wait_for(sandbox.tasks[-1], timeout=5)

    assert final.status is ConnectionStatus.FAILED
    assert final.last_error == TOO_MANY_CONNECTIONS.format(product="Feishu CN", limit=50)
    assert extra.state.reconnects == 0
    assert all(connected(c)() for c in fifty)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_stop_is_bounded_even_with_a_stuck_handler(sandbox: Sandbox) -> None:
    app, user, chat = await sandbox.bot_with_chat()
    entered = asyncio.Event()

    async def stuck(payload: bytes) -> AckResult:
        entered.set()
        await asyncio.Event().wait()
        return ACK_OK

    conn = sandbox.start(app, stuck, timings=Timings(**{**_fast(), "stop_grace_s": 1.0}))
    await wait_until(connected(conn), what="connected")
    await sandbox.say(chat, user, "this handler never returns")
    await asyncio.wait_for(entered.wait(), 5)

    started = time.monotonic()
    await conn.stop()

    assert time.monotonic() - started < 2.0
    assert conn.state.status is ConnectionStatus.STOPPED
    assert sandbox.tasks[-1].done() and not sandbox.tasks[-1].cancelled()
    await wait_until(
        lambda: not sandbox.server.sandbox.hub.live(app["app_id"]), what="socket closed"
    )


async def test_stop_while_backing_off_and_before_run(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    unreachable = "http://127.0.0.1:9"  # discard port: connection refused
    slow = Timings(**{**_fast(), "backoff_base_s": 30, "reconnect_interval_s": 60})
    conn = sandbox.start(app, Inbox(), base_url=unreachable, timings=slow)
    await wait_until(lambda: conn.state.status is ConnectionStatus.RECONNECTING, what="backing off")

    started = time.monotonic()
    await conn.stop()
    assert time.monotonic() - started < 0.5
    assert conn.state.status is ConnectionStatus.STOPPED
    assert conn.state.last_error and "endpoint discovery failed" in conn.state.last_error

    idle = LongConnection("cli_x", "s", Region.LARK, http=sandbox.http, on_event=Inbox())
    await idle.stop()
    assert (await idle.run()).status is ConnectionStatus.STOPPED


async def test_cancelling_run_stops_it(sandbox: Sandbox) -> None:
    app, _, _ = await sandbox.bot_with_chat()
    conn = sandbox.start(app, Inbox())
    await wait_until(connected(conn), what="connected")
    task = sandbox.tasks[-1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.state.status is ConnectionStatus.STOPPED


async def test_fifty_bots_in_one_loop_each_get_their_own_events(sandbox: Sandbox) -> None:
    bots = [await sandbox.bot_with_chat(f"bot {i}") for i in range(50)]
    inboxes = [Inbox() for _ in bots]
    started = time.monotonic()
    conns = [sandbox.start(app, inbox) for (app, _, _), inbox in zip(bots, inboxes, strict=True)]
    await wait_until(lambda: all(connected(c)() for c in conns), within=15, what="50 bots")
    connect_s = time.monotonic() - started

    for i, (_, user, chat) in enumerate(bots):
        await sandbox.say(chat, user, f"message {i}")

    await wait_until(lambda: all(len(i.events) == 1 for i in inboxes), within=10, what="50 events")
    for i, ((app, _, _), inbox) in enumerate(zip(bots, inboxes, strict=True)):
        assert inbox.texts() == [f"message {i}"]
        assert inbox.events[0]["header"]["app_id"] == app["app_id"]
    assert connect_s < 10


# -- the wire, against a fake frontier ------------------------------------------------------------


async def test_ping_first_then_ack_is_the_event_frame_with_code_and_biz_rt() -> None:
    received: list[Frame] = []
    event = Frame(
        seq_id=7,
        log_id=99,
        service=33554678,
        method=FrameMethod.DATA,
        headers=[
            ("type", "event"),
            ("message_id", "m1"),
            ("sum", "1"),
            ("seq", "0"),
            ("trace_id", "t"),
        ],
        payload=b'{"schema":"2.0","header":{"event_id":"e1"}}',
    )

    async def frontier(ws: ServerConnection) -> None:
        received.append(decode_frame(bytes(await ws.recv())))  # type: ignore[arg-type]
        pong = Frame(service=33554678, headers=[("type", "pong")], payload=b'{"PingInterval":60}')
        await ws.send(encode_frame(pong))
        await ws.send(encode_frame(event))
        received.append(decode_frame(bytes(await ws.recv())))  # type: ignore[arg-type]
        await ws.wait_closed()

    async with serve(frontier, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        def discovery(request: httpx.Request) -> httpx.Response:
            assert json.loads(request.content) == {"AppID": "cli_a", "AppSecret": "sec"}
            assert request.headers["X-Rudder-Original-Host"] == "open.larksuite.com"
            url = f"ws://127.0.0.1:{port}/ws/v2?device_id=42&service_id=33554678&ticket=t"
            return httpx.Response(200, json={"code": 0, "data": {"URL": url, "ClientConfig": {}}})

        async def record(payload: bytes) -> AckResult:
            await asyncio.sleep(0.02)
            return AckResult(data=b'{"toast":"ok"}')

        async with httpx.AsyncClient(transport=httpx.MockTransport(discovery)) as http:
            conn = LongConnection(
                "cli_a",
                "sec",
                Region.LARK,
                http=http,
                on_event=record,
                base_url_override="http://sandbox.invalid",
                timings=FAST,
            )
            task = asyncio.create_task(conn.run())
            await wait_until(lambda: len(received) == 2, what="ping and ack")
            assert conn.client_config.ping_interval == 0.5  # the test override beats the pong's 60
            assert conn.state.connection_id == "42"
            await conn.stop()
            await task

    ping, ack = received
    assert encode_frame(ping).hex(" ") == (
        "08 00 10 00 18 f6 81 80 10 20 00 2a 0c 0a 04 74 79 70 65 12 04 70 69 6e 67"
    )
    assert (ack.seq_id, ack.log_id, ack.service, ack.method) == (7, 99, 33554678, FrameMethod.DATA)
    assert ack.headers[:5] == event.headers
    biz_rt = ack.header("biz_rt")
    assert biz_rt is not None and 15 <= int(biz_rt) < 1000
    body = json.loads(ack.payload or b"")
    assert body["code"] == 200 and body["data"] == "eyJ0b2FzdCI6Im9rIn0="


async def test_forbidden_handshake_is_fatal_and_server_errors_are_not() -> None:
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus
    from websockets.http11 import Response

    from rudder.feishu.longconn_connect import (
        FatalConnectError,
        RetryableConnectError,
        _handshake_error,
    )

    def refused(**headers: str) -> InvalidStatus:
        return InvalidStatus(Response(403, "Forbidden", Headers(headers)))

    forbidden = _handshake_error(
        refused(**{"handshake-status": "403", "handshake-msg": "no"}), Region.FEISHU
    )
    assert isinstance(forbidden, FatalConnectError) and forbidden.code == 403
    other_514 = _handshake_error(
        refused(**{"handshake-status": "514", "handshake-msg": "x", "handshake-autherrcode": "1"}),
        Region.FEISHU,
    )
    assert isinstance(other_514, RetryableConnectError)
    assert isinstance(_handshake_error(refused(), Region.FEISHU), RetryableConnectError)


def test_client_config_merge_ignores_nonsense() -> None:
    base = ClientConfig()
    merged = base.merged(
        {"PingInterval": 0, "ReconnectNonce": "x", "ReconnectCount": 3, "Other": 1}
    )
    assert merged == ClientConfig(reconnect_count=3)
    assert base.merged({"PingInterval": 90, "ReconnectInterval": 90.5}).ping_interval == 90.0


def test_final_states_are_final() -> None:
    check_transition(ConnectionStatus.CONNECTED, ConnectionStatus.RECONNECTING)
    with pytest.raises(IllegalTransition):
        check_transition(ConnectionStatus.FAILED, ConnectionStatus.CONNECTING)
    with pytest.raises(IllegalTransition):
        check_transition(ConnectionStatus.STOPPED, ConnectionStatus.CONNECTED)


# -- helpers ----------------------------------------------------------------------------------


def _fast() -> dict[str, Any]:
    return {name: getattr(FAST, name) for name in FAST.__slots__}


class FreezableProxy:
    """A loopback TCP relay that can go silent without closing anything (a half-open link)."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for client, upstream, _ in self._pipes:
            client.close()
            upstream.close()

    def freeze(self) -> None:
        for _, _, frozen in self._pipes:
            frozen.set()

    async def close_frozen(self) -> None:
        for client, upstream, frozen in self._pipes:
            if frozen.is_set():
                upstream.close()
                client.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        frozen = asyncio.Event()
        self._pipes.append((writer, up_writer, frozen))
        await asyncio.gather(
            self._pump(reader, up_writer, frozen),
            self._pump(up_reader, writer, frozen),
            return_exceptions=True,
        )

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if frozen.is_set():
                    continue  # swallow: the peer never hears of it
                dst.write(data)
                await dst.drain()
            dst.close()
