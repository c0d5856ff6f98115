"""Live conversation events across processes: a run on one instance streams to a browser on
any other.

Each local publish goes out as one NOTIFY `{o: origin, t: topic, e: event, d: data}`. A text
delta too large for one notification is cut into several (their `offset`s keep the text exact);
any other event too large (a finished message's full body) travels as a reference that the
receiver reads back from the database, where it was committed before it was published.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import Message, Run
from rudder.live import LiveHub
from rudder.run_views import message_view, run_view
from rudder.scale.bus import PAYLOAD_LIMIT, NotifyBus

log = logging.getLogger(__name__)

CHANNEL = "rudder_live"


def _encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False, separators=(",", ":"))


def _fits(text: str) -> bool:
    return len(text.encode()) <= PAYLOAD_LIMIT


class LiveFanout:
    def __init__(
        self,
        hub: LiveHub,
        bus: NotifyBus,
        sessions: async_sessionmaker[AsyncSession],
        origin: str,
    ) -> None:
        self.hub = hub
        self.bus = bus
        self.sessions = sessions
        self.origin = origin
        bus.on(CHANNEL, self.receive)
        hub.forward = self.forward

    # -- out -------------------------------------------------------------------------------------

    def forward(self, topic: str, event: str, data: dict[str, Any]) -> None:
        for payload in self._payloads(topic, event, data):
            self.bus.send(CHANNEL, payload)

    def _payloads(self, topic: str, event: str, data: dict[str, Any]) -> list[str]:
        whole = _encode({"o": self.origin, "t": topic, "e": event, "d": data})
        if _fits(whole):
            return [whole]
        if event == "message.delta" and isinstance(data.get("delta"), str):
            return self._split_delta(topic, data)
        ref = _reference(event, data)
        if ref is None:
            log.warning("live event %s too large to share and not fetchable; skipped", event)
            return []
        return [_encode({"o": self.origin, "t": topic, "e": event, "f": ref})]

    def _split_delta(self, topic: str, data: dict[str, Any]) -> list[str]:
        text: str = data["delta"]
        offset = int(data.get("offset", 0))
        out: list[str] = []
        size = max(1, len(text) // 2)
        start = 0
        while start < len(text):
            piece = text[start : start + size]
            encoded = _encode(
                {
                    "o": self.origin,
                    "t": topic,
                    "e": "message.delta",
                    "d": {**data, "offset": offset + start, "delta": piece},
                }
            )
            if not _fits(encoded) and size > 1:
                size = max(1, size // 2)
                continue
            out.append(encoded)
            start += len(piece)
        return out

    # -- in --------------------------------------------------------------------------------------

    async def receive(self, raw: str) -> None:
        note = json.loads(raw)
        if note.get("o") == self.origin:
            return
        topic, event = str(note["t"]), str(note["e"])
        data = note.get("d")
        if data is None:
            data = await self._fetch(note.get("f") or {})
            if data is None:
                return
        self.hub.deliver(topic, event, data)

    async def _fetch(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        async with self.sessions() as session:
            if ref.get("kind") == "message":
                message = await session.get(Message, str(ref.get("id")))
                return message_view(message) if message is not None else None
            if ref.get("kind") == "run":
                run = await session.get(Run, str(ref.get("id")))
                return run_view(run) if run is not None else None
        return None


def _reference(event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    if event.startswith("message.") and "id" in data:
        return {"kind": "message", "id": data["id"]}
    if event.startswith("run.") and "id" in data:
        return {"kind": "run", "id": data["id"]}
    return None
