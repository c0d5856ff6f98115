"""An incremental Server-Sent Events parser (the WHATWG `text/event-stream` format)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None


class SseDecoder:
    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, text: str) -> Iterator[SseEvent]:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            event = self._line(line.removesuffix("\r"))
            if event is not None:
                yield event

    def finish(self) -> Iterator[SseEvent]:
        # The format drops an event not ended by a blank line; servers that end the body right
        # after the last `data:` line are common enough to be lenient.
        if self._buffer:
            yield from self.feed("\n")
        event = self._line("")
        if event is not None:
            yield event

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, often a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data = "", []
        return event
