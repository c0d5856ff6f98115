"""Running a local coding-agent CLI that prints one JSON event per line (Claude Code, Codex):
the child process, line splitting, session resume with one fresh retry, a no-progress watchdog,
and the end-of-run checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._child import Child, ChildSpec, spawn
from ._deadline import fmt_seconds
from ._events import excerpt
from .base import RunEvent, RunEventKind, RuntimeError_

# How the CLIs say a `--resume` id is unknown (Claude Code: "No conversation found with session
# ID: ..."; Codex: "no rollout found for thread id ..."); matched loosely because the wording is
# not a documented contract.
UNKNOWN_SESSION = re.compile(
    r"no (saved )?(conversation|session|thread|rollout)\b[^\n]{0,40}\bfound"
    r"|(session|conversation|thread)\b[^\n]{0,60}\bnot found"
    r"|unknown session",
    re.IGNORECASE,
)
# Events that are the agent's work; a run that produced one is not retried as a fresh session.
_CONTENT = frozenset(
    {RunEventKind.TEXT, RunEventKind.THINKING, RunEventKind.TOOL_CALL, RunEventKind.TOOL_RESULT}
)
# A Rust backtrace on stderr (Codex prints one with each error): noise, not output.
_BACKTRACE_START = re.compile(r"^\s*(stack )?backtrace:\s*$", re.IGNORECASE)
_BACKTRACE_LINE = re.compile(r"^\s*(\d+:\s|at\s)")
_LAST_LINES = 3


class SessionLost(RuntimeError_):
    """The CLI no longer knows the session it was asked to resume."""


class CliParser(Protocol):
    def line(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        """One JSON line → events; raises RuntimeError_ when the CLI reports a failed run."""
        ...

    def progress(self, obj: dict[str, Any]) -> bool:
        """Whether this line is the CLI getting on with the turn (not a retry or a warning)."""
        ...

    def finish(self) -> None:
        """Raises RuntimeError_ if the stream ended without the CLI's final event."""
        ...


@dataclass(frozen=True, slots=True)
class SessionState:
    """What Rudder keeps of a CLI session between runs: the CLI's id and its running totals.

    Stored as one opaque string (`ID#key=value,...`) in the conversation's session slot, so a CLI
    that reports cumulative usage can be billed per run: this run's figure is its total minus the
    total stored after the previous run of the same session.
    """

    id: str
    totals: dict[str, float] = field(default_factory=dict)

    def encode(self) -> str:
        if not self.totals:
            return self.id
        return self.id + "#" + ",".join(f"{k}={_num(v)}" for k, v in sorted(self.totals.items()))

    @classmethod
    def decode(cls, stored: str | None) -> SessionState | None:
        if not stored:
            return None
        sid, _, rest = stored.partition("#")
        totals: dict[str, float] = {}
        for part in rest.split(",") if rest else []:
            key, _, value = part.partition("=")
            with contextlib.suppress(ValueError):
                totals[key] = float(value)
        return cls(sid, totals)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def per_run(total: Any, previous: SessionState | None, key: str) -> Any:
    """A cumulative figure made per run: minus the previous run's total of the same session."""
    if not isinstance(total, int | float) or previous is None or key not in previous.totals:
        return total
    before = previous.totals[key]
    if total < before:  # the CLI started counting afresh (a compacted or replaced session)
        return total
    diff = total - before
    return round(diff, 8) if isinstance(total, float) else int(diff)


class _StderrFilter:
    """stderr lines worth keeping: a backtrace's frames are dropped."""

    def __init__(self) -> None:
        self.in_backtrace = False

    def keep(self, line: str) -> bool:
        if _BACKTRACE_START.match(line):
            self.in_backtrace = True
            return False
        if self.in_backtrace and _BACKTRACE_LINE.match(line):
            return False
        self.in_backtrace = False
        return True


class _Attempt:
    def __init__(self, parser: CliParser, name: str) -> None:
        self.parser = parser
        self.name = name
        self.pending = ""
        self.non_json: list[str] = []
        self.progressed = False  # set by each line that is progress; reset by the reader
        # Tool calls without a result yet: a long build or test run is work, not a stall.
        self.open_tools: set[str] = set()
        self.last_lines: deque[str] = deque(maxlen=_LAST_LINES)
        self.stderr_kept: deque[str] = deque(maxlen=8)
        self._stderr = _StderrFilter()

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
            if self.parser.progress(obj):
                self.progressed = True
            for event in self.parser.line(obj):
                if event.kind is RunEventKind.LOG and event.text:
                    self.last_lines.append(excerpt(event.text))
                elif event.kind is RunEventKind.TOOL_CALL:
                    self.open_tools.add(str(event.data.get("id")))
                elif event.kind is RunEventKind.TOOL_RESULT:
                    self.open_tools.discard(str(event.data.get("tool_use_id")))
                yield event
            return
        # A warning or banner on stdout: kept in the transcript, and in the reason if the
        # run fails; the final-event check decides whether the run succeeded.
        self.non_json.append(excerpt(line))
        self.last_lines.append(excerpt(line))
        yield RunEvent(RunEventKind.LOG, text=line)

    def stderr(self, child: Child) -> Iterator[RunEvent]:
        for line in child.take_stderr_lines():
            if not self._stderr.keep(line):
                continue
            self.last_lines.append(excerpt(line))
            self.stderr_kept.append(line.strip())
            yield RunEvent(RunEventKind.LOG, text=line, data={"stream": "stderr"})

    def stderr_tail(self) -> str:
        return excerpt(" | ".join(self.stderr_kept), 600)

    def finish(self) -> Iterator[RunEvent]:
        yield from self._line(self.pending)
        try:
            self.parser.finish()
        except RuntimeError_ as exc:
            if self.non_json:
                raise type(exc)(f"{exc}; it printed: {' | '.join(self.non_json[-3:])}") from None
            raise


async def _run_once(
    spec: ChildSpec, attempt: _Attempt, idle_sec: float
) -> AsyncGenerator[RunEvent, None]:
    loop = asyncio.get_running_loop()
    async with spawn(spec) as child:
        chunks = child.stdout_chunks()
        last_progress = loop.time()
        while True:
            try:
                # The watchdog: retries, warnings and stderr are not progress, so a CLI that
                # only says "reconnecting" for `idle_sec` is ended with what it last said.
                # While a tool runs only the run's own timeout applies. (asyncio.timeout, not
                # wait_for: 3.11's wait_for can swallow a stop.)
                limit = None if attempt.open_tools else last_progress + idle_sec
                async with asyncio.timeout_at(limit):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                for event in attempt.stderr(child):
                    yield event
                said = " | ".join(attempt.last_lines) or "nothing"
                raise RuntimeError_(
                    f"{attempt.name} made no progress for {fmt_seconds(idle_sec)}; "
                    f"it last said: {said}"
                ) from None
            for event in attempt.feed(chunk):
                yield event
            if attempt.progressed:
                attempt.progressed = False
                last_progress = loop.time()
            for event in attempt.stderr(child):
                yield event
        code = await child.wait()
        for event in attempt.stderr(child):
            yield event
        if code != 0:
            reason = child.exit_reason(code, attempt.stderr_tail())
            raise RuntimeError_(f"{attempt.name}: {reason}")
        for event in attempt.finish():
            yield event


async def run_cli(
    name: str,
    session_id: str | None,
    build: Callable[[str | None], ChildSpec],
    new_parser: Callable[[], CliParser],
    *,
    idle_sec: float,
) -> AsyncGenerator[RunEvent, None]:
    """Run the CLI resuming `session_id`; if the CLI no longer knows that session and none of
    the agent's work was produced yet, run it once more as a fresh session (with the transcript).
    """
    resume = session_id
    while True:
        produced = False
        try:
            attempt = _run_once(build(resume), _Attempt(new_parser(), name), idle_sec)
            async with contextlib.aclosing(attempt):
                async for event in attempt:
                    produced = produced or event.kind in _CONTENT
                    yield event
            return
        except RuntimeError_ as exc:
            lost = isinstance(exc, SessionLost) or UNKNOWN_SESSION.search(str(exc))
            if resume is None or produced or not lost:
                raise
        yield RunEvent(
            RunEventKind.LOG,
            text=f"{name} no longer knows session {resume}; starting a fresh session",
        )
        resume = None
