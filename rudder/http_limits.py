"""What one client can make the server hold: the size of a body and of a request head, and how
long it may take to send them.

Neither Starlette nor uvicorn caps a request body: `await request.body()` reads whatever arrives
(a 400 MiB POST to an unknown webhook was held whole before its 404), and uvicorn times out only
a keep-alive connection between requests, so one that sends its headers a byte at a time, or
never finishes its body, stays open as long as it likes (slowloris). Hence our own:

- `BodyLimit`, an ASGI middleware: refuses by `Content-Length` before the app runs, and counts
  the bytes of a streamed (chunked) body as the app reads them; over the limit is
  413 `{error, detail}` naming the limit, and the connection is closed.
- `GuardedH11Protocol`, uvicorn's h11 protocol with a cap on the request head (431) and read
  deadlines (408, then the connection is closed). h11 rather than httptools: h11 buffers at
  most `h11_max_incomplete_event_size` of an unfinished head, httptools has no such bound.
- `uvicorn_options()`: the `uvicorn.Config` keywords that install them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rudder import texts

log = logging.getLogger(__name__)

KiB = 1 << 10
MiB = 1 << 20
# JSON API bodies are small: the largest text field (an agent's instructions, a message) is
# 100,000 characters, under 1 MiB even with every character escaped.
DEFAULT_BODY_LIMIT = 1 * MiB
ROUTE_BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    # Feishu's events are far smaller (reference §6.7); the same cap as webhook_codec's.
    (re.compile(r"^/api/integrations/feishu/[^/]+/webhook/?$"), 1 * MiB),
    # An agent may post up to 2,000,000 characters to Feishu (split into parts there), which is
    # up to 12 MB of JSON with every character escaped.
    (re.compile(r"^/api/agents/[^/]+/integrations/feishu/messages/?$"), 16 * MiB),
    # A local chat's message with files (docs/media.md): the per-message total, plus framing.
    (re.compile(r"^/messenger/[^/]+/messages/?$"), 101 * MiB),
)
HEADER_LIMIT = 32 * KiB  # the request line and all headers (nginx's default is 4 × 8 KiB)
HEAD_TIMEOUT_S = 10.0  # from the connection (or a kept-alive request's first byte) to its headers
BODY_IDLE_TIMEOUT_S = 10.0  # a body that stops arriving for this long
BODY_TIMEOUT_S = 60.0  # the whole body: 16 MiB at 300 KB/s
KEEP_ALIVE_S = 5  # idle between requests (uvicorn's own timer)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB"


def body_limit(path: str) -> int:
    for pattern, limit in ROUTE_BODY_LIMITS:
        if pattern.match(path):
            return limit
    return DEFAULT_BODY_LIMIT


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a request body over its route's limit before it is read into memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit, declared)
            return
        received = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app made of the exception; the 413 below answers instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            # The app may wrap ours (FastAPI turns a body error into its own 400).
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(scope, receive, send, limit, None)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses a malformed one before we see it
    return None


async def _refuse(
    scope: Scope, receive: Receive, send: Send, limit: int, declared: int | None
) -> None:
    log.info(
        "%s %s refused (413): body of %s bytes over the %s limit",
        scope["method"],
        scope["path"],
        declared if declared is not None else f"more than {limit}",
        _size(limit),
    )
    response = JSONResponse(
        {
            "error": "payload_too_large",
            "detail": texts.HTTP_BODY_TOO_LARGE.format(limit=_size(limit)),
        },
        status_code=413,
        # The rest of the body is not read: the connection cannot carry another request.
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a cap on the request head and deadlines for reading a request.

    A connection waits at most HEAD_TIMEOUT_S for a request's line and headers, counted from the
    connection (or, on a kept-alive connection, from the next request's first byte) however
    slowly they trickle in; a body may pause at most BODY_IDLE_TIMEOUT_S and take at most
    BODY_TIMEOUT_S in all. Past a deadline the client gets 408 and the connection is closed; an
    app waiting for that body sees the client disconnect.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_tail = b""  # the last bytes seen of a head, to find its end across reads
        self._head_since: float | None = self.loop.time()
        self._body_since: float | None = None
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._upgraded = False
        self._schedule(HEAD_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        if self.conn.their_state is h11.IDLE:
            if self._head_since is None:
                self._head_since = self._last_data
                self._schedule(HEAD_TIMEOUT_S)
            seen, tail = self._head_bytes, self._head_tail
            self._head_bytes += len(data)
            self._head_tail = data[-3:]
            if self._head_bytes > HEADER_LIMIT:
                # The same read may carry the end of the head and the start of the body.
                end = (tail + data).find(b"\r\n\r\n")
                if end < 0 or seen - len(tail) + end + 4 > HEADER_LIMIT:
                    limit = _size(HEADER_LIMIT)
                    self._close_with(431, texts.HTTP_HEADERS_TOO_LARGE.format(limit=limit))
                    return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._track()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read (an early error, a route that takes none):
            # reading the rest only to throw it away would serve whoever sends 200 MiB. Close.
            self.server_state.total_requests += 1
            self._cancel()
            self.transport.close()
            return
        super().on_response_complete()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True  # the connection belongs to the WebSocket protocol from here on
        self._cancel()
        super().handle_websocket_upgrade(event)

    def _track(self) -> None:
        if self._upgraded or self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            return  # a head is pending (timer armed) or the keep-alive timer is running
        self._head_since, self._head_bytes, self._head_tail = None, 0, b""
        if state is h11.SEND_BODY:
            if self._body_since is None:
                self._body_since = self.loop.time()
                self._schedule(BODY_IDLE_TIMEOUT_S)
            return
        self._body_since = None
        self._cancel()

    def _schedule(self, delay: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(max(delay, 0.05), self._check)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._upgraded or self.transport.is_closing():
            return
        now = self.loop.time()
        state = self.conn.their_state
        if state is h11.IDLE and self._head_since is not None:
            due = self._head_since + HEAD_TIMEOUT_S
            if now >= due:
                self._close_with(408, texts.HTTP_HEAD_TIMEOUT.format(seconds=int(HEAD_TIMEOUT_S)))
            else:
                self._schedule(due - now)
        elif state is h11.SEND_BODY and self._body_since is not None:
            if self.flow.read_paused:
                # The app is not reading yet (uvicorn stopped reading a full buffer): not the
                # client's pause.
                self._last_data = now
            due = min(self._last_data + BODY_IDLE_TIMEOUT_S, self._body_since + BODY_TIMEOUT_S)
            if now >= due:
                self._close_with(408, texts.HTTP_BODY_TIMEOUT)
            else:
                self._schedule(due - now)

    def _close_with(self, status: int, detail: str) -> None:
        """Answer `status` (when no response has started) and close, whatever h11's state is."""
        self._cancel()
        log.info("connection from %s closed (%d): %s", _peer(self.client), status, detail)
        # A head still arriving has no cycle yet (`self.cycle` is the previous request's).
        head_pending = self.conn.their_state is h11.IDLE
        if head_pending or (self.cycle is not None and not self.cycle.response_started):
            body = json.dumps({"error": _ERROR_CODES[status], "detail": detail}).encode()
            reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(body), body)
            )
        if self.cycle is not None and not head_pending:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


_ERROR_CODES = {408: "request_timeout", 431: "request_header_fields_too_large"}


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


def uvicorn_options() -> dict[str, Any]:
    """Keywords for `uvicorn.Config`: our protocol, the head cap, no WebSockets (Rudder serves none)."""
    return {
        "http": GuardedH11Protocol,
        "ws": "none",
        "h11_max_incomplete_event_size": HEADER_LIMIT,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
