"""Rudder's agent event vocabulary on the wire (process JSONL, http NDJSON and SSE), and the
decoder that tells plain-text output from JSONL output by its first line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from enum import Enum
from typing import Any

from .base import RunEvent, RunEventKind, RuntimeError_

log = logging.getLogger(__name__)

_EXCERPT = 120
# Event types that only mark the end of a stream; the end of output says the same.
_END_TYPES = frozenset({"done", "end"})
_TEXT_TYPES = {
    "text": RunEventKind.TEXT,
    "thinking": RunEventKind.THINKING,
    "log": RunEventKind.LOG,
}
_DATA_TYPES = {
    "tool_call": RunEventKind.TOOL_CALL,
    "tool_result": RunEventKind.TOOL_RESULT,
    "usage": RunEventKind.USAGE,
}


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_from_json(obj: dict[str, Any]) -> RunEvent | None:
    """One wire event → a RunEvent; None for end markers and types this version doesn't know."""
    kind = obj.get("type")
    data = {key: value for key, value in obj.items() if key != "type"}
    if kind in _TEXT_TYPES:
        text = obj.get("text", obj.get("message"))
        if not isinstance(text, str):
            raise RuntimeError_(f"the agent sent a {kind!r} event without a string 'text'")
        return RunEvent(_TEXT_TYPES[kind], text=text)
    if kind in _DATA_TYPES:
        return RunEvent(_DATA_TYPES[kind], text=str(obj.get("name") or ""), data=data)
    if kind == "session":
        session_id = obj.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise RuntimeError_("the agent sent a 'session' event without a 'session_id'")
        return RunEvent(RunEventKind.SESSION, data={"session_id": session_id})
    if kind == "attachment":
        # {"type":"attachment","path":...} (a file in the run's directory) or, over http,
        # {"type":"attachment","name":...,"data_base64":...}; checked by the executor.
        name = obj.get("path") or obj.get("name") or ""
        return RunEvent(RunEventKind.ATTACHMENT, text=str(name), data=data)
    if kind == "error":
        message = obj.get("message") or obj.get("text") or "no reason given"
        raise RuntimeError_(f"the agent reported an error: {message}")
    if kind not in _END_TYPES:
        # A newer agent may speak a richer vocabulary; skipping keeps old Rudders working with it.
        log.debug("ignoring agent event of unknown type %r", kind)
    return None


def parse_event_line(line: str, where: str) -> RunEvent | None:
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise RuntimeError_(f"{where} is not a JSON event: {excerpt(line)!r}")
    return event_from_json(obj)


def _is_event_line(line: str) -> bool:
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("type"), str)


class _Mode(Enum):
    UNDECIDED = "undecided"  # nothing but whitespace seen yet
    TEXT = "text"  # every chunk is a delta of the reply, passed on as it arrives
    JSONL = "jsonl"  # one JSON event per line


class OutputDecoder:
    """Decodes an agent's output stream.

    The first non-empty line decides: a JSON object with a `type` key means JSONL events, anything
    else means plain text. Text that cannot start a JSON object is passed on at once, without
    waiting for a newline, so a plain-text agent streams word by word.
    """

    def __init__(self, source: str, mode: str = "auto") -> None:
        self._source = source
        # A caller that knows the format (an NDJSON or text/plain HTTP response) skips detection.
        self._mode = {"auto": _Mode.UNDECIDED, "text": _Mode.TEXT, "jsonl": _Mode.JSONL}[mode]
        self._buffer = ""
        self._line_no = 0

    # Generators, not lists: events before a bad line must reach the run before the error does.
    def feed(self, chunk: str) -> Iterator[RunEvent]:
        if self._mode is _Mode.TEXT:
            if chunk:
                yield RunEvent(RunEventKind.TEXT, text=chunk)
            return
        self._buffer += chunk
        if self._mode is _Mode.UNDECIDED:
            head = self._buffer.lstrip()
            if not head or (head.startswith("{") and "\n" not in head):
                return  # only whitespace, or the first line of what may be JSONL is incomplete
            self._decide(head.split("\n", 1)[0])
        yield from self._drain()

    def finish(self) -> Iterator[RunEvent]:
        if self._mode is _Mode.UNDECIDED:
            head = self._buffer.strip()
            if not head:
                return
            self._decide(head.split("\n", 1)[0])
        if self._mode is _Mode.JSONL:
            self._buffer += "\n"
        yield from self._drain()

    def _decide(self, first_line: str) -> None:
        self._mode = _Mode.JSONL if _is_event_line(first_line) else _Mode.TEXT

    def _drain(self) -> Iterator[RunEvent]:
        if self._mode is _Mode.TEXT:
            text, self._buffer = self._buffer, ""
            if text:
                yield RunEvent(RunEventKind.TEXT, text=text)
            return
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line_no += 1
            if line.strip():
                event = parse_event_line(line, f"{self._source} line {self._line_no}")
                if event is not None:
                    yield event
