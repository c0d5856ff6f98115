"""Our asyncio client for the Feishu/Lark long connection (event delivery over WebSocket, §8).

Why not the official SDK's client: it runs on one module-level event loop, ``start()`` blocks
forever and there is no ``stop()`` (reference §9.3), while one Rudder process holds the sockets of
many bots at once. Here each bot is one :class:`LongConnection` whose ``run()`` is an ordinary
task: two tasks per live socket (reader and keep-alive) plus one per event in flight, no threads.

Delivery contract: ``on_event(payload)`` must return only once the event is durably recorded;
the ack goes out after it returns. Feishu re-pushes what is not acked with ``code 200`` within
3 s (reference §7.5), so on_event should be quick and leave the real work for later.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rudder.feishu.frames import (
    HEADER_BIZ_RT,
    HEADER_TYPE,
    FragmentAssembler,
    Frame,
    FrameDecodeError,
    FrameMethod,
    decode_frame,
    encode_frame,
    ping_frame,
)
from rudder.feishu.longconn_connect import (
    FatalConnectError,
    RetryableConnectError,
    discover,
    open_socket,
)
from rudder.feishu.longconn_state import (
    ACK_FAILED,
    AckResult,
    ClientConfig,
    ConnectionState,
    ConnectionStatus,
    Timings,
    check_transition,
)
from rudder.feishu.regions import HostKind, Region, endpoint

__all__ = [
    "ACK_FAILED",
    "AckResult",
    "ClientConfig",
    "ConnectionState",
    "ConnectionStatus",
    "LongConnection",
    "Timings",
]

log = logging.getLogger(__name__)

OnEvent = Callable[[bytes], Awaitable[AckResult]]
OnState = Callable[[ConnectionState], None]

GAVE_UP = "Gave up after {attempts} failed connection attempts: {error}"
STALE = "nothing received for {seconds:g} s (two ping intervals); reconnecting"


class LongConnection:
    def __init__(
        self,
        app_id: str,
        app_secret: str,
        region: Region,
        *,
        http: httpx.AsyncClient,
        on_event: OnEvent,
        on_state: OnState | None = None,
        base_url_override: str | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.region = region
        self._http = http
        self._on_event = on_event
        self._on_state = on_state
        self._endpoint = endpoint(region, HostKind.OPEN, base_url_override)
        self._timings = timings or Timings()
        self._config = self._timings.apply(ClientConfig())
        self._assembler = FragmentAssembler(ttl=self._timings.fragment_ttl_s)
        self._handlers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[Any] | None = None
        self._stop_requested = False
        self._last_frame_mono = 0.0
        # Mutable figures behind the ConnectionState snapshot.
        self._status = ConnectionStatus.IDLE
        self._connected_since: float | None = None
        self._last_frame_at: float | None = None
        self._last_event_at: float | None = None
        self._reconnects = 0
        self._failed_attempts = 0
        self._events = 0
        self._last_error: str | None = None
        self._connection_id: str | None = None

    # -- public surface ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return ConnectionState(
            status=self._status,
            connected_since=self._connected_since,
            last_frame_at=self._last_frame_at,
            last_event_at=self._last_event_at,
            reconnects=self._reconnects,
            failed_attempts=self._failed_attempts,
            events=self._events,
            last_error=self._last_error,
            connection_id=self._connection_id,
        )

    @property
    def client_config(self) -> ClientConfig:
        return self._config

    async def run(self) -> ConnectionState:
        """Hold the connection until stop(), cancellation or a fatal answer; return the final state."""
        task = asyncio.current_task()
        if self._task is not None or task is None:
            raise RuntimeError("run() is already running or has finished")
        self._task = task
        if self._stop_requested:
            self._set_status(ConnectionStatus.STOPPED)
            return self.state
        try:
            await self._connect_loop()
        except Exception as exc:  # a bug must not leave a bot looking "connecting" forever
            log.exception("feishu long connection %s: crashed", self.app_id)
            self._fail(f"internal error: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            self._set_status(ConnectionStatus.STOPPED)
            if not self._stop_requested:
                raise  # cancelled by its owner: the owner expects to see the cancellation
            task.uncancel()  # the cancellation was stop()'s own
        finally:
            for handler in list(self._handlers):
                handler.cancel()
        return self.state

    async def stop(self) -> None:
        """Stop within about ``stop_grace_s + close_timeout_s`` seconds; safe to call twice."""
        self._stop_requested = True
        task = self._task
        if task is None:
            if self._status is ConnectionStatus.IDLE:
                self._set_status(ConnectionStatus.STOPPED)
            return
        if task.done() or task is asyncio.current_task():
            if task is asyncio.current_task():
                task.cancel()
            return
        task.cancel()
        bound = self._timings.stop_grace_s + self._timings.close_timeout_s + 0.5
        await asyncio.wait({task}, timeout=bound)

    # -- connecting and reconnecting -----------------------------------------------------

    async def _connect_loop(self) -> None:
        self._set_status(ConnectionStatus.CONNECTING)
        ever_connected = False
        while True:
            try:
                await self._attempt(reconnect=ever_connected)
            except FatalConnectError as exc:
                self._fail(str(exc))
                return
            except RetryableConnectError as exc:
                self._failed_attempts += 1
                self._set_error(str(exc))
                log.warning("feishu long connection %s: %s", self.app_id, exc)
                limit = self._config.reconnect_count
                if limit >= 0 and self._failed_attempts > limit:
                    self._fail(GAVE_UP.format(attempts=self._failed_attempts, error=exc))
                    return
                self._set_status(ConnectionStatus.RECONNECTING)
                await asyncio.sleep(self._backoff())
                continue
            # A session ran and ended (server close, network loss, watchdog).
            ever_connected = True
            self._set_status(ConnectionStatus.RECONNECTING)
            # Spread the herd: every bot of a restarted frontier reconnecting at once is exactly
            # what the SDKs' random()*ReconnectNonce first wait avoids (§8.7).
            await asyncio.sleep(random.random() * self._config.reconnect_nonce)

    def _backoff(self) -> float:
        """Exponential with jitter, capped by Feishu's ReconnectInterval."""
        cap = self._config.reconnect_interval
        step = self._timings.backoff_base_s * 2.0 ** min(self._failed_attempts - 1, 30)
        delay = min(cap, step)
        return delay / 2 + random.random() * delay / 2

    async def _attempt(self, reconnect: bool) -> None:
        found = await discover(
            self._http,
            self._endpoint,
            self.region,
            self.app_id,
            self._secret,
            self._timings.http_timeout_s,
        )
        self._config = self._timings.apply(self._config.merged(found.client_config))
        ws = await open_socket(
            found.url,
            self._endpoint.headers,
            self.region,
            self._timings.open_timeout_s,
            self._timings.close_timeout_s,
        )
        if reconnect:
            self._reconnects += 1
        self._failed_attempts = 0
        self._connection_id = found.device_id
        self._connected_since = time.time()
        self._set_status(ConnectionStatus.CONNECTED)
        log.info("feishu long connection %s: connected (%s)", self.app_id, found.device_id)
        try:
            await self._session(ws, found.service_id)
        finally:
            self._connected_since = None
            self._connection_id = None
            await self._drain_handlers()
            await _close(ws)

    # -- one live socket -----------------------------------------------------------------

    async def _session(self, ws: ClientConnection, service_id: int) -> None:
        self._last_frame_mono = time.monotonic()
        keepalive = asyncio.create_task(self._keepalive(ws, service_id))
        try:
            async for message in ws:
                if isinstance(message, bytes):  # text frames are not part of the protocol
                    self._on_frame(ws, message)
            error = "Feishu closed the connection"
        except ConnectionClosed as exc:
            error = f"connection lost ({exc})"
        finally:
            keepalive.cancel()
            # asyncio.wait, not await: a cancellation of our own must not be swallowed here.
            await asyncio.wait({keepalive})
        if not keepalive.cancelled() and keepalive.exception() is None:
            error = keepalive.result()
        self._set_error(error)

    async def _keepalive(self, ws: ClientConnection, service_id: int) -> str:
        """Ping at PingInterval (first right away, §8.4); give up on a socket silent for two."""
        ping = encode_frame(ping_frame(service_id))
        next_ping = time.monotonic()
        while True:
            now = time.monotonic()
            interval = self._config.ping_interval
            if now >= next_ping:
                try:
                    # Bounded: on a dead link with a full send buffer, send() would wait forever.
                    await asyncio.wait_for(ws.send(ping), timeout=interval)
                except ConnectionClosed:
                    return "connection lost while pinging"
                except TimeoutError:
                    self._last_frame_mono = -math.inf  # fall through to the watchdog below
                now = time.monotonic()
                next_ping = now + interval
            # A half-open TCP connection delivers nothing and reports no error: Feishu's pong is
            # our only proof of life (openclaw-lark#158, §8.7).
            deadline = self._last_frame_mono + 2 * interval
            if now >= deadline:
                reason = STALE.format(seconds=2 * interval)
                log.warning("feishu long connection %s: %s", self.app_id, reason)
                if ws.transport is not None:
                    ws.transport.abort()  # no close handshake: the peer is not listening
                return reason
            await asyncio.sleep(max(0.0, min(next_ping, deadline) - now))

    def _on_frame(self, ws: ClientConnection, raw: bytes) -> None:
        self._last_frame_mono = time.monotonic()
        self._last_frame_at = time.time()
        try:
            frame = decode_frame(raw)
        except FrameDecodeError as exc:
            log.warning("feishu long connection %s: undecodable frame: %s", self.app_id, exc)
            return
        kind = frame.header(HEADER_TYPE)
        if frame.method == FrameMethod.CONTROL:
            if kind == "pong" and frame.payload:
                self._apply_pong(frame.payload)
            return  # server pings need no answer (SDKs ignore them)
        if frame.method != FrameMethod.DATA:
            return
        if kind == "card":
            # Legacy card callbacks: the py SDK returns without acking and node ignores them (§8.4).
            return
        try:
            payload = self._assembler.add(frame)
        except FrameDecodeError as exc:
            log.warning("feishu long connection %s: bad fragment: %s", self.app_id, exc)
            return
        if payload is None:
            return  # only the completing fragment is acked (§8.5)
        self._events += 1
        self._last_event_at = time.time()
        task = asyncio.create_task(self._handle(ws, frame, payload))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _apply_pong(self, payload: bytes) -> None:
        try:
            raw = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            # RecursionError: a pong of nested brackets would otherwise end the whole connection.
            log.warning(
                "feishu long connection %s: pong payload ignored: %s",
                self.app_id,
                type(exc).__name__,
            )
            return
        if isinstance(raw, dict):
            self._config = self._timings.apply(self._config.merged(raw))

    async def _handle(self, ws: ClientConnection, frame: Frame, payload: bytes) -> None:
        started = time.monotonic()
        try:
            result = await self._on_event(payload)
        except Exception:
            log.exception("feishu long connection %s: on_event failed; acking 500", self.app_id)
            result = ACK_FAILED
        elapsed_ms = int((time.monotonic() - started) * 1000)
        # The ack is the event frame itself, payload replaced, plus biz_rt in ms (§8.6).
        body: dict[str, Any] = {"code": 200 if result.ok else 500}
        if result.ok and result.data is not None:
            body["data"] = base64.b64encode(result.data).decode("ascii")
        ack = Frame(
            seq_id=frame.seq_id,
            log_id=frame.log_id,
            service=frame.service,
            method=frame.method,
            headers=list(frame.headers),
            payload=json.dumps(body, separators=(",", ":")).encode(),
            log_id_new=frame.log_id_new,
        ).with_header(HEADER_BIZ_RT, str(elapsed_ms))
        try:
            await ws.send(encode_frame(ack))
        except ConnectionClosed:
            # Recorded but not acked: Feishu re-pushes it and the inbox drops the duplicate.
            log.info("feishu long connection %s: socket closed before the ack", self.app_id)

    async def _drain_handlers(self) -> None:
        """On stop, events in flight get stop_grace_s to be recorded and acked, then are cancelled.

        Otherwise they are left to finish: their acks may be lost with the socket, which only
        means Feishu pushes them again.
        """
        if not self._stop_requested or not self._handlers:
            return
        _, late = await asyncio.wait(set(self._handlers), timeout=self._timings.stop_grace_s)
        for task in late:
            task.cancel()

    # -- state ---------------------------------------------------------------------------

    def _set_status(self, status: ConnectionStatus) -> None:
        if status is self._status:
            return
        check_transition(self._status, status)
        self._status = status
        self._notify()

    def _set_error(self, error: str) -> None:
        self._last_error = error
        self._notify()

    def _fail(self, reason: str) -> None:
        log.error("feishu long connection %s: %s", self.app_id, reason)
        self._last_error = reason
        self._set_status(ConnectionStatus.FAILED)

    def _notify(self) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(self.state)
        except Exception:
            log.exception("feishu long connection %s: on_state failed", self.app_id)


async def _close(ws: ClientConnection) -> None:
    # close() waits at most close_timeout for the peer's close frame, then drops the socket.
    with contextlib.suppress(Exception):
        await ws.close()
