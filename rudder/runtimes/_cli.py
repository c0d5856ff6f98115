"""Running a local coding-agent CLI that prints one JSON event per line (Claude Code, Codex):
the child process, line splitting, session resume with one fresh retry, and the end-of-run checks.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Protocol

from ._child import ChildSpec, spawn, stderr_events
from ._events import excerpt
from .base import RunEvent, RunEventKind, RuntimeError_

# How the CLIs say a `--resume` id is unknown (Claude Code: "No conversation found with session
# ID: ..."); matched loosely because the wording is not a documented contract.
UNKNOWN_SESSION = re.compile(
    r"no (saved )?(conversation|session|thread|rollout)\b[^\n]{0,40}\bfound"
    r"|(session|conversation|thread)\b[^\n]{0,60}\bnot found"
    r"|unknown session",
    re.IGNORECASE,
)


class CliParser(Protocol):
    def line(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        """One JSON line → events; raises RuntimeError_ when the CLI reports a failed run."""
        ...

    def finish(self) -> None:
        """Raises RuntimeError_ if the stream ended without the CLI's final event."""
        ...


class _Attempt:
    def __init__(self, parser: CliParser, name: str) -> None:
        self.parser = parser
        self.name = name
        self.pending = ""
        self.non_json: list[str] = []

    def feed(self, chunk: str) -> Iterator[RunEvent]:
        *lines, self.pending = (self.pending + chunk).split("\n")
        for line in lines:
            yield from self._line(line)

    def _line(self, line: str) -> Iterator[RunEvent]:
        line = line.strip()
        if not line:
            return
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            yield from self.parser.line(obj)
            return
        # A warning or banner on stdout: kept in the transcript, and in the reason if the
        # run fails; the final-event check decides whether the run succeeded.
        self.non_json.append(excerpt(line))
        yield RunEvent(RunEventKind.LOG, text=line)

    def finish(self) -> Iterator[RunEvent]:
        yield from self._line(self.pending)
        try:
            self.parser.finish()
        except RuntimeError_ as exc:
            if self.non_json:
                raise type(exc)(f"{exc}; it printed: {' | '.join(self.non_json[-3:])}") from None
            raise


async def _run_once(spec: ChildSpec, attempt: _Attempt) -> AsyncGenerator[RunEvent, None]:
    async with spawn(spec) as child:
        async for chunk in child.stdout_chunks():
            for event in attempt.feed(chunk):
                yield event
            for event in stderr_events(child):
                yield event
        code = await child.wait()
        for event in stderr_events(child):
            yield event
        if code != 0:
            raise RuntimeError_(f"{attempt.name}: {child.exit_reason(code)}")
        for event in attempt.finish():
            yield event


async def run_cli(
    name: str,
    session_id: str | None,
    build: Callable[[str | None], ChildSpec],
    new_parser: Callable[[], CliParser],
) -> AsyncGenerator[RunEvent, None]:
    """Run the CLI resuming `session_id`; if the CLI no longer knows that session and nothing
    was produced yet, run it once more as a fresh session.
    """
    resume = session_id
    while True:
        produced = False
        try:
            attempt = _run_once(build(resume), _Attempt(new_parser(), name))
            async with contextlib.aclosing(attempt):
                async for event in attempt:
                    produced = produced or event.kind is not RunEventKind.LOG
                    yield event
            return
        except RuntimeError_ as exc:
            if resume is None or produced or not UNKNOWN_SESSION.search(str(exc)):
                raise
        yield RunEvent(
            RunEventKind.LOG,
            text=f"{name} no longer knows session {resume}; starting a fresh session",
        )
        resume = None
