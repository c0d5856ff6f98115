"""A long-connection client fed garbage by a tiny fake frontier stays usable.

The frontier sends everything a broken or hostile peer could: noise, text frames, frames with
impossible fragment headers, unknown methods, pongs with absurd ClientConfig, then one good
event. The client must deliver and ack the good event, keep pinging, and after the peer drops
the socket, reconnect and deliver again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from rudder.feishu.frames import Frame, FrameMethod, decode_frame, encode_frame
from rudder.feishu.longconn import AckResult, ConnectionStatus, LongConnection, Timings
from rudder.feishu.regions import Region
from tests.hostile.conftest import count

SERVICE = 7
TIMINGS = Timings(
    http_timeout_s=2,
    open_timeout_s=2,
    close_timeout_s=0.3,
    backoff_base_s=0.05,
    stop_grace_s=0.3,
    reconnect_interval_s=0.2,
    reconnect_nonce_s=0.05,
)


def _event(n: int) -> Frame:
    body = {"schema": "2.0", "header": {"event_id": f"ev{n}", "event_type": "x"}}
    return Frame(
        seq_id=n,
        log_id=n,
        service=SERVICE,
        method=FrameMethod.DATA,
        headers=[("type", "event"), ("message_id", f"m{n}"), ("sum", "1"), ("seq", "0")],
        payload=json.dumps(body).encode(),
    )


def _data(headers: list[tuple[str, str]], payload: bytes = b"{}") -> bytes:
    return encode_frame(Frame(method=FrameMethod.DATA, headers=headers, payload=payload))


GARBAGE: list[bytes | str] = [
    b"",
    b"\x00",
    b"\xff" * 64,
    bytes(range(256)),
    "a text frame is not part of the protocol",
    encode_frame(Frame(method=FrameMethod.DATA))[:-1],
    _data([("type", "event"), ("sum", "1000000000000"), ("seq", "0"), ("message_id", "x")]),
    _data([("type", "event"), ("sum", "many"), ("seq", "0")]),
    _data([("type", "event"), ("sum", "3"), ("seq", "9")]),
    _data([("type", "event"), ("sum", "2"), ("seq", "0"), ("message_id", "never-finished")]),
    _data([("type", "card")]),
    encode_frame(Frame(method=99, headers=[("type", "event")], payload=b"{}")),
    encode_frame(Frame(headers=[("type", "pong")], payload=b"not json")),
    encode_frame(Frame(headers=[("type", "pong")], payload=b'{"PingInterval": 1e999}')),
    encode_frame(Frame(headers=[("type", "pong")], payload=b'{"PingInterval": 0.000001}')),
    encode_frame(Frame(headers=[("type", "pong")], payload=b'{"PingInterval": "soon"}')),
    encode_frame(Frame(headers=[("type", "pong")], payload=b"[" * 100_000)),
]


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_garbage_frames_neither_kill_nor_wedge_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions = 0
    pings = 0
    acks: list[Frame] = []

    async def frontier(ws: ServerConnection) -> None:
        nonlocal sessions, pings
        sessions += 1
        this = sessions
        for junk in GARBAGE:
            await ws.send(junk)
        await ws.send(encode_frame(_event(this)))
        async for raw in ws:
            frame = decode_frame(raw if isinstance(raw, bytes) else raw.encode())
            if frame.header("type") == "ping":
                pings += 1
                await ws.send(encode_frame(Frame(service=SERVICE, headers=[("type", "pong")])))
                continue
            acks.append(frame)
            if this == 1:
                # Drop the socket without a close handshake, as a lost network would.
                assert ws.transport is not None
                ws.transport.abort()
                return

    async with serve(frontier, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        def discovery(request: httpx.Request) -> httpx.Response:
            url = f"ws://127.0.0.1:{port}/ws?device_id=d&service_id={SERVICE}"
            config = {"PingInterval": 0.3, "ReconnectInterval": 0.2, "ReconnectNonce": 0.05}
            return httpx.Response(
                200, json={"code": 0, "data": {"URL": url, "ClientConfig": config}}
            )

        received: list[bytes] = []

        async def on_event(payload: bytes) -> AckResult:
            received.append(payload)
            return AckResult()

        async with httpx.AsyncClient(transport=httpx.MockTransport(discovery)) as http:
            conn = LongConnection(
                "cli_garbage",
                "secret",
                Region.FEISHU,
                http=http,
                on_event=on_event,
                base_url_override="http://frontier.invalid",
                timings=TIMINGS,
            )
            task = asyncio.create_task(conn.run())
            try:
                await _until(lambda: len(acks) == 2, 10, "both events acked")
                pings_then = pings
                await _until(lambda: pings >= pings_then + 2, 5, "pings after the garbage")
                state = conn.state
            finally:
                await conn.stop()
                await asyncio.wait_for(task, 5)

    count("garbage frames fed to the long-connection client", len(GARBAGE) * sessions)
    assert [json.loads(p)["header"]["event_id"] for p in received] == ["ev1", "ev2"]
    assert all(json.loads(a.payload or b"")["code"] == 200 for a in acks)
    assert state.status is ConnectionStatus.CONNECTED and state.reconnects == 1
    assert state.events == 2  # garbage is never counted as an event
    # The absurd pongs were ignored: the interval is still discovery's 0.3 s.
    assert conn.client_config.ping_interval == 0.3
    logged = [r.getMessage() for r in caplog.records if r.name == "rudder.feishu.longconn"]
    assert any("undecodable frame" in m for m in logged)
    assert any("bad fragment" in m and "over the limit" in m for m in logged)
    assert not any(r.levelname == "ERROR" for r in caplog.records if r.name.startswith("rudder"))
