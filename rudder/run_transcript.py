"""A run's transcript as it streams: the full text, and the rows not yet written to `run_events`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rudder.db.models import RunEventRow
from rudder.runtimes.base import RunEvent, RunEventKind


@dataclass
class Transcript:
    run_id: str
    usage: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    _parts: list[str] = field(default_factory=list)
    _length: int = 0
    _pending_text: str = ""
    _pending: list[RunEvent] = field(default_factory=list)
    _seq: int = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def text_length(self) -> int:
        return self._length

    def add(self, ev: RunEvent) -> None:
        if ev.kind is RunEventKind.TEXT:
            self._parts.append(ev.text)
            self._length += len(ev.text)
            # Consecutive deltas become one `text` row per flush, not one row per token.
            self._pending_text += ev.text
            return
        self._pending.append(ev)
        if ev.kind is RunEventKind.USAGE:
            self.usage.update(ev.data)
        elif ev.kind is RunEventKind.SESSION:
            self.session_id = str(ev.data.get("session_id") or ev.text or "") or None

    def take_rows(
        self, *, final_status: str | None = None, error: str | None = None
    ) -> list[RunEventRow]:
        """The rows to write now, numbered in order; with `final_status`, the closing status row."""
        payloads: list[tuple[str, dict[str, Any]]] = []
        if self._pending_text:
            payloads.append(("text", {"text": self._pending_text}))
        payloads.extend((ev.kind.value, _payload(ev)) for ev in self._pending)
        if final_status is not None:
            payloads.append(("status", {"status": final_status, "error": error}))
        self._pending_text, self._pending = "", []
        rows = []
        for kind, payload in payloads:
            self._seq += 1
            rows.append(RunEventRow(run_id=self.run_id, seq=self._seq, kind=kind, payload=payload))
        return rows


def _payload(ev: RunEvent) -> dict[str, Any]:
    payload: dict[str, Any] = dict(ev.data)
    if ev.text:
        payload["text"] = ev.text
    return payload
