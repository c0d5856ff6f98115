"""The long-connection data plane: endpoint discovery, WebSocket frames, acks (reference §8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from rudder.feishu.frames import (
    HEADER_HANDSHAKE_AUTH_ERRCODE,
    HEADER_HANDSHAKE_MSG,
    HEADER_HANDSHAKE_STATUS,
    HEADER_MESSAGE_ID,
    HEADER_SEQ,
    HEADER_SUM,
    HEADER_TRACE_ID,
    HEADER_TYPE,
    Frame,
    FrameDecodeError,
    FrameMethod,
    decode_frame,
    encode_frame,
    fragment_payload,
)
from rudder.sandbox.envelope import find_app, json_response, read_json_object

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

# Endpoint and handshake codes the official SDKs act on (py ws/const.py).
AUTH_FAILED = 514
EXCEED_CONN_LIMIT = 1000040350
SERVICE_ID = 33554678
TICKET_TTL_S = 300.0


@dataclass(slots=True)
class Ticket:
    app_id: str
    expires_at: float


@dataclass(slots=True)
class AckFaults:
    lose: int = 0
    delay: int = 0
    delay_s: float = 0.0


@dataclass(eq=False)
class Connection:
    conn_id: str
    app_id: str
    service_id: int
    websocket: WebSocket
    next_seq: int = 1
    pending: dict[str, asyncio.Future[tuple[bool, str]]] = field(default_factory=dict)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    frames_in: int = 0
    # The payload of each ack by frame message_id: a callback's answer rides in its "data".
    ack_payloads: dict[str, bytes] = field(default_factory=dict)

    async def send(self, frame: Frame) -> None:
        async with self.send_lock:
            await self.websocket.send_bytes(encode_frame(frame))

    async def push_event(
        self, payload: bytes, fragment_size: int
    ) -> asyncio.Future[tuple[bool, str]]:
        message_id = secrets.token_hex(16)
        future: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        parts = list(
            fragment_payload(payload, fragment_size if fragment_size > 0 else len(payload) or 1)
        )
        trace_id = secrets.token_hex(16)
        for total, seq, chunk in parts:
            frame = Frame(
                seq_id=self.next_seq,
                log_id=random.getrandbits(63),
                service=self.service_id,
                method=FrameMethod.DATA,
                headers=[
                    (HEADER_TYPE, "event"),
                    (HEADER_MESSAGE_ID, message_id),
                    (HEADER_TRACE_ID, trace_id),
                    (HEADER_SUM, str(total)),
                    (HEADER_SEQ, str(seq)),
                ],
                payload=chunk,
            )
            self.next_seq += 1
            await self.send(frame)
        return future


def parse_ack(payload: bytes | None) -> tuple[bool, str]:
    """Accept the SDKs' ack forms: {"code":200}, with "data", or go's nulls; else a failure."""
    try:
        body = json.loads(payload or b"")
    except (ValueError, UnicodeDecodeError):
        return False, "ack payload is not JSON"
    code = body.get("code") if isinstance(body, dict) else None
    if code == 200:
        return True, "acked"
    return False, f"ack code {code}"


class ConnectionHub:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self.connections: dict[str, dict[str, Connection]] = {}
        self.tickets: dict[str, Ticket] = {}
        self.ack_faults: dict[str | None, AckFaults] = {}
        self.handshakes_refused = 0

    def live(self, app_id: str) -> list[Connection]:
        return list(self.connections.get(app_id, {}).values())

    def issue_ticket(self, app_id: str) -> str:
        now = self._sandbox.clock.now()
        self.tickets = {k: t for k, t in self.tickets.items() if t.expires_at > now}
        ticket = secrets.token_urlsafe(16)
        self.tickets[ticket] = Ticket(app_id, now + TICKET_TTL_S)
        return ticket

    async def deliver(self, app_id: str, payload: bytes) -> tuple[bool, str, str | None]:
        connections = self.live(app_id)
        if not connections:
            return False, "no live connection", None
        # Cluster mode: exactly one randomly chosen connection gets each push (reference §8).
        conn = random.choice(connections)
        settings = self._sandbox.settings
        try:
            future = await conn.push_event(payload, settings.ws_fragment_size)
        except Exception as exc:  # the socket died under us; retry per the ladder
            return False, f"send failed: {type(exc).__name__}", conn.conn_id
        try:
            ok, detail = await asyncio.wait_for(future, timeout=settings.ack_timeout_s)
        except TimeoutError:
            ok, detail = False, f"no ack within {settings.ack_timeout_s:g} s"
        finally:
            for key, pending in list(conn.pending.items()):
                if pending is future:
                    del conn.pending[key]
                    conn.ack_payloads.pop(key, None)
        return ok, detail, conn.conn_id

    async def exchange(
        self, app_id: str, payload: bytes, timeout: float
    ) -> tuple[str, bytes | None]:
        """Push a callback to one live connection; its ack payload, or why there is none."""
        connections = self.live(app_id)
        if not connections:
            return "no live connection", None
        conn = random.choice(connections)
        try:
            future = await conn.push_event(payload, self._sandbox.settings.ws_fragment_size)
        except Exception as exc:
            return f"send failed: {type(exc).__name__}", None
        key = next(k for k, f in conn.pending.items() if f is future)
        try:
            await asyncio.wait_for(future, timeout=timeout)
            return "acked", conn.ack_payloads.get(key)
        except TimeoutError:
            return f"no answer within {timeout:g} s", None
        finally:
            conn.pending.pop(key, None)
            conn.ack_payloads.pop(key, None)

    def _ack_fault(self, app_id: str) -> AckFaults | None:
        for key in (app_id, None):
            faults = self.ack_faults.get(key)
            if faults is not None and (faults.lose > 0 or faults.delay > 0):
                return faults
        return None

    def on_ack(self, conn: Connection, frame: Frame) -> None:
        message_id = frame.header(HEADER_MESSAGE_ID) or ""
        future = conn.pending.get(message_id)
        if future is None or future.done():
            return
        result = parse_ack(frame.payload)
        conn.ack_payloads[message_id] = frame.payload or b""
        faults = self._ack_fault(conn.app_id)
        if faults is not None and faults.lose > 0:
            faults.lose -= 1
            return
        if faults is not None and faults.delay > 0:
            faults.delay -= 1
            asyncio.get_running_loop().call_later(faults.delay_s, _resolve, future, result)
            return
        future.set_result(result)

    async def drop(self, app_id: str | None = None) -> int:
        targets = [
            c
            for a, conns in self.connections.items()
            if app_id in (None, a)
            for c in conns.values()
        ]
        for conn in targets:
            with contextlib.suppress(Exception):  # already gone
                await conn.websocket.close(code=1001)
            self._forget(conn)
        return len(targets)

    async def close_all(self) -> None:
        await self.drop(None)

    def _forget(self, conn: Connection) -> None:
        conns = self.connections.get(conn.app_id, {})
        conns.pop(conn.conn_id, None)
        for future in conn.pending.values():
            if not future.done():
                future.set_result((False, "connection closed"))
        self._sandbox.touch()

    async def serve(self, websocket: WebSocket) -> None:
        sandbox = self._sandbox
        params = websocket.query_params
        ticket = self.tickets.get(params.get("ticket", ""))
        if (
            ticket is None
            or ticket.expires_at < sandbox.clock.now()
            or ticket.app_id not in sandbox.apps
        ):
            await _deny(websocket, 403, "invalid or expired ticket")
            return
        if len(self.live(ticket.app_id)) >= sandbox.settings.ws_max_connections:
            # The 51st connection of an app is refused: 514 + 1000040350 (py _parse_ws_conn_exception).
            self.handshakes_refused += 1
            await _deny(websocket, AUTH_FAILED, "exceed connection limit", EXCEED_CONN_LIMIT)
            return
        await websocket.accept()
        try:
            service_id = int(params.get("service_id", SERVICE_ID))
        except ValueError:
            service_id = SERVICE_ID
        conn = Connection(
            conn_id=params.get("device_id") or secrets.token_hex(8),
            app_id=ticket.app_id,
            service_id=service_id,
            websocket=websocket,
        )
        if conn.conn_id in self.connections.get(conn.app_id, {}):
            conn.conn_id = f"{conn.conn_id}-{secrets.token_hex(3)}"
        self.connections.setdefault(conn.app_id, {})[conn.conn_id] = conn
        sandbox.touch()
        try:
            await self._receive_loop(conn)
        except WebSocketDisconnect:
            pass
        finally:
            self._forget(conn)

    async def _receive_loop(self, conn: Connection) -> None:
        while True:
            raw = await conn.websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            data = raw.get("bytes")
            if data is None:
                continue  # text frames are not part of the protocol
            conn.frames_in += 1
            try:
                frame = decode_frame(data)
            except FrameDecodeError:
                continue
            if frame.method == FrameMethod.CONTROL and frame.header(HEADER_TYPE) == "ping":
                config = json.dumps(self._sandbox.settings.client_config()).encode()
                pong = Frame(
                    seq_id=frame.seq_id,
                    log_id=frame.log_id,
                    service=frame.service,
                    method=FrameMethod.CONTROL,
                    headers=[(HEADER_TYPE, "pong")],
                    payload=config,
                )
                await conn.send(pong)
            elif frame.method == FrameMethod.DATA:
                self.on_ack(conn, frame)


def _resolve(future: asyncio.Future[tuple[bool, str]], result: tuple[bool, str]) -> None:
    if not future.done():
        future.set_result(result)


async def _deny(websocket: WebSocket, status: int, msg: str, auth_code: int | None = None) -> None:
    headers = {HEADER_HANDSHAKE_STATUS: str(status), HEADER_HANDSHAKE_MSG: msg}
    if auth_code is not None:
        headers[HEADER_HANDSHAKE_AUTH_ERRCODE] = str(auth_code)
    body = {"code": status, "msg": msg}
    try:
        await websocket.send_denial_response(json_response(body, status=403, headers=headers))
    except RuntimeError:  # the server lacks the denial-response extension
        await websocket.close(code=1008, reason=msg)


async def endpoint(request: Request) -> Response:
    """POST /callback/ws/endpoint {AppID, AppSecret} → data.URL + data.ClientConfig."""
    sandbox: Sandbox = request.app.state.sandbox
    body = await read_json_object(request)
    if body is None:
        return json_response({"code": 1000040343, "msg": "invalid request body"}, status=400)
    app = find_app(sandbox, request, body.get("AppID"))
    if app is None or body.get("AppSecret") != app.app_secret:
        return json_response({"code": AUTH_FAILED, "msg": "app id or app secret invalid"})
    fault = sandbox.take_fault("ws.endpoint", request.url.path, app.app_id)
    if fault is not None:
        return fault
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    device_id = str(random.randint(10**18, 10**19 - 1))
    ticket = sandbox.hub.issue_ticket(app.app_id)
    url = f"ws://{host}/ws/v2?device_id={device_id}&service_id={SERVICE_ID}&ticket={ticket}"
    data: dict[str, Any] = {"URL": url, "ClientConfig": sandbox.settings.client_config()}
    return json_response({"code": 0, "msg": "ok", "data": data})


async def websocket_route(websocket: WebSocket) -> None:
    sandbox: Sandbox = websocket.app.state.sandbox
    await sandbox.hub.serve(websocket)
