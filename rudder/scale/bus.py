"""PostgreSQL LISTEN/NOTIFY between Rudder processes.

One connection listens, one sends, both in autocommit. Sends are queued and go out in order
from one task, so a receiver sees one process's notifications in the order they were made
(PostgreSQL delivers a session's notifications in commit order). Delivery is best effort: a
process that was disconnected repairs its view from the database (`on_reconnect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg

log = logging.getLogger(__name__)

# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more (in the server encoding).
PAYLOAD_LIMIT = 7900
RECONNECT_S = 1.0

Handler = Callable[[str], Awaitable[None]]


def plain_url(url: str) -> str:
    """psycopg wants `postgresql://`, SQLAlchemy's URL names the driver."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class NotifyBus:
    def __init__(self, url: str) -> None:
        self._url = plain_url(url)
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._outgoing: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    def on(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_hooks.append(hook)

    def send(self, channel: str, payload: str) -> None:
        if len(payload.encode()) > PAYLOAD_LIMIT:
            raise ValueError(f"NOTIFY payload too large ({len(payload.encode())} bytes)")
        self._outgoing.put_nowait((channel, payload))

    async def start(self, timeout: float = 10.0) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="notify-listen"),
            asyncio.create_task(self._send_loop(), name="notify-send"),
        ]
        # Listening before start() returns: nothing published after our start is missed.
        await asyncio.wait_for(self._listening.wait(), timeout)

    async def close(self) -> None:
        # Let what was queued (a last run.updated, a cancel) go out before the socket closes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while not self._outgoing.empty():
                    await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    for channel in self._handlers:
                        await conn.execute(f'LISTEN "{channel}"')
                    self._listening.set()
                    if not first:
                        await self._run_reconnect_hooks()
                    first = False
                    async for note in conn.notifies():
                        await self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notification listener lost its connection (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_S)

    async def _dispatch(self, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                await handler(payload)
            except Exception:
                log.exception("notification handler for %s failed", channel)

    async def _run_reconnect_hooks(self) -> None:
        for hook in self._reconnect_hooks:
            try:
                await hook()
            except Exception:
                log.exception("reconnect hook failed")

    async def _send_loop(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    while True:
                        channel, payload = await self._outgoing.get()
                        try:
                            await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                        except psycopg.OperationalError:
                            # Retry this one on the next connection, then keep the order.
                            self._requeue_first(channel, payload)
                            raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notification sender lost its connection (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_S)

    def _requeue_first(self, channel: str, payload: str) -> None:
        rest: list[tuple[str, str]] = []
        while not self._outgoing.empty():
            rest.append(self._outgoing.get_nowait())
        self._outgoing.put_nowait((channel, payload))
        for item in rest:
            self._outgoing.put_nowait(item)
