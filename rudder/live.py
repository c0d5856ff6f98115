"""In-process pub/sub of conversation events, with a short replay buffer for SSE resume.

Event ids are `<epoch>-<n>`: the epoch changes each time the process starts, so a browser that
reconnects with an id from an earlier process gets a fresh snapshot instead of a wrong replay.

With PostgreSQL several processes serve one deployment: `forward` then carries every local
publish to the others (LISTEN/NOTIFY, `rudder.scale.fanout`), which `deliver` locally.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

REPLAY_BUFFER = 2000
SUBSCRIBER_QUEUE = 5000


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: str
    event: str
    data: dict[str, Any]

    def encoded(self) -> str:
        return json.dumps(self.data, default=str, separators=(",", ":"))


class Subscription:
    """What one SSE stream reads; `overflowed` is set when it fell too far behind.

    `END` arrives in the queue when the server shuts down: the stream ends so that a graceful
    shutdown does not wait (and then fail) on browsers that would keep the stream open forever.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.overflowed = asyncio.Event()

    def offer(self, item: LiveEvent) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


END = LiveEvent("", "end", {})


class LiveHub:
    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._buffers: dict[str, deque[LiveEvent]] = defaultdict(
            lambda: deque(maxlen=REPLAY_BUFFER)
        )
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self.forward: Callable[[str, str, dict[str, Any]], None] | None = None

    def publish(self, topic: str, event: str, data: dict[str, Any]) -> LiveEvent:
        item = self.deliver(topic, event, data)
        if self.forward is not None:
            self.forward(topic, event, data)
        return item

    def deliver(self, topic: str, event: str, data: dict[str, Any]) -> LiveEvent:
        """Publish to this process's subscribers only (events that came from another process)."""
        item = LiveEvent(f"{self.epoch}-{next(self._counter)}", event, data)
        self._buffers[topic].append(item)
        for sub in list(self._subscribers.get(topic, ())):
            if not sub.offer(item):
                # A subscriber that cannot keep up is cut off; its browser reconnects and resumes.
                self._subscribers[topic].discard(sub)
        return item

    def replay_after(self, topic: str, last_event_id: str | None) -> list[LiveEvent] | None:
        """Events after `last_event_id`, or None when they cannot be replayed (send a snapshot)."""
        if not last_event_id:
            return None
        epoch, _, number = last_event_id.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        wanted = int(number)
        buffer = self._buffers.get(topic)
        if not buffer:
            return []
        if len(buffer) == buffer.maxlen and wanted < _seq(buffer[0]):
            return None  # some events after `wanted` were already evicted
        return [e for e in buffer if _seq(e) > wanted]

    def end_streams(self) -> None:
        """Shutting down: every open stream ends now (its client reconnects to the next server)."""
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                if not sub.offer(END):
                    sub.overflowed.set()

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subscribers[topic].add(sub)
        try:
            yield sub
        finally:
            self._subscribers[topic].discard(sub)
            if not self._subscribers[topic]:
                self._subscribers.pop(topic, None)


def _seq(event: LiveEvent) -> int:
    return int(event.id.partition("-")[2])


def conversation_topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def org_topic(org_id: str) -> str:
    """An organization's attention events (failed runs, budget alerts, new messages)."""
    return f"org:{org_id}"
