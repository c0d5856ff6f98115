"""One agent child process: spawned in its own process group, read with a deadline, and ended
as a group (SIGTERM, then SIGKILL after a grace period) whenever the run ends early.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

from ._deadline import Deadline
from .base import RunEvent, RunEventKind, RuntimeError_

STDERR_TAIL_BYTES = 4096
# stderr also goes to the run transcript line by line, bounded so a chatty agent cannot flood it.
STDERR_MAX_LINES = 500
STDERR_MAX_LINE_CHARS = 2000
_READ_SIZE = 65536
_REAP_SEC = 2.0
# Rudder's own settings (database URL, the secrets master key, ...) are not the agent's business;
# a runtime config passes what an agent needs through its `env`.
_PRIVATE_ENV = re.compile(r"^(RUDDER_.*|DATABASE_URL)$")


def resolve_command(command: str) -> str:
    # "python" means the interpreter running Rudder, so the bundled example agent (and agents
    # written against Rudder's own environment) work wherever Rudder does.
    if command == "python":
        return sys.executable
    found = shutil.which(command)
    if found is None:
        raise RuntimeError_(f"command not found: {command!r} (is it installed and on PATH?)")
    return found


def child_env(extra: Mapping[str, str], *, drop: tuple[str, ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _PRIVATE_ENV.match(k) and k not in drop}
    # Python agents writing to a pipe would otherwise buffer their output and not stream.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass(slots=True)
class ChildSpec:
    argv: list[str]
    env: dict[str, str]
    stdin: bytes
    timeout_sec: float
    grace_sec: float = 5.0
    cwd: str | None = None


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process
    deadline: Deadline
    _stderr: bytearray = field(default_factory=bytearray)
    _stderr_lines: list[str] = field(default_factory=list)
    _stderr_partial: str = ""
    _stderr_line_count: int = 0
    _exited: bool = False  # the agent ended by itself and was waited for
    _stdin_task: asyncio.Task[None] | None = None
    _stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr_tail(self) -> str:
        return self._stderr.decode("utf-8", errors="replace").strip()

    def take_stderr_lines(self) -> list[str]:
        """Complete stderr lines received since the last call (for the transcript)."""
        lines, self._stderr_lines = self._stderr_lines, []
        return lines

    def _add_stderr_text(self, text: str, *, final: bool = False) -> None:
        *lines, self._stderr_partial = (self._stderr_partial + text).split("\n")
        if final and self._stderr_partial:
            lines.append(self._stderr_partial)
            self._stderr_partial = ""
        for line in lines:
            line = line.rstrip("\r")
            if not line.strip():
                continue
            self._stderr_line_count += 1
            if self._stderr_line_count <= STDERR_MAX_LINES:
                self._stderr_lines.append(line[:STDERR_MAX_LINE_CHARS])
            elif self._stderr_line_count == STDERR_MAX_LINES + 1:
                self._stderr_lines.append("… further stderr lines are not kept in the transcript")

    async def stdout_chunks(self) -> AsyncIterator[str]:
        """Decoded stdout as it arrives (never waiting for a newline), until EOF."""
        assert self.proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            data = await self.deadline.run(self.proc.stdout.read(_READ_SIZE))
            text = decoder.decode(data, final=not data)
            if text:
                yield text
            if not data:
                return

    async def wait(self) -> int:
        code = await self.deadline.run(self.proc.wait())
        self._exited = True
        # The stderr reader ends at EOF, right after exit; bounded because a grandchild that
        # inherited stderr can keep it open.
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        return code

    def exit_reason(self, code: int, tail: str | None = None) -> str:
        """Why the agent ended: its exit code or signal, then `tail` (default: stderr's end)."""
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            reason = f"the agent process was killed by {name}"
        else:
            reason = f"the agent process exited with code {code}"
        tail = self.stderr_tail if tail is None else tail
        return f"{reason}: {tail}" if tail else reason

    async def _feed_stdin(self) -> None:
        assert self.proc.stdin is not None
        # An agent that never reads stdin, or exits early, must not fail the run.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.write(self.spec.stdin)
            await self.proc.stdin.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.close()

    async def _discard_stdout(self) -> None:
        assert self.proc.stdout is not None
        while await self.proc.stdout.read(_READ_SIZE):
            pass

    async def _collect_stderr(self) -> None:
        assert self.proc.stderr is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while data := await self.proc.stderr.read(_READ_SIZE):
            self._stderr += data
            del self._stderr[:-STDERR_TAIL_BYTES]
            self._add_stderr_text(decoder.decode(data))
        self._add_stderr_text(decoder.decode(b"", final=True), final=True)

    def _signal_group(self, sig: signal.Signals) -> None:
        # The child leads its own group (start_new_session), so its pid is the group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def close(self) -> None:
        """End the whole process group unless the agent exited by itself; bounded by the grace."""
        # Unread stdout would pause the pipe, and asyncio's wait() also waits for the pipes' EOF.
        drain = asyncio.create_task(self._discard_stdout())
        try:
            if not self._exited:
                if self.proc.returncode is None:
                    self._signal_group(signal.SIGTERM)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.proc.wait(), self.spec.grace_sec)
                # Also reaches helpers the agent started that ignored SIGTERM or outlived it.
                self._signal_group(signal.SIGKILL)
                # Bounded: a process that left the group (setsid) can hold our pipes open.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), _REAP_SEC)
        except BaseException:
            # A second cancellation during cleanup must still leave nothing running.
            self._signal_group(signal.SIGKILL)
            raise
        finally:
            for task in (self._stdin_task, self._stderr_task, drain):
                if task is not None:
                    task.cancel()


def stderr_events(child: Child) -> Iterator[RunEvent]:
    """The child's new stderr lines as transcript-only log events."""
    for line in child.take_stderr_lines():
        yield RunEvent(RunEventKind.LOG, text=line, data={"stream": "stderr"})


@contextlib.asynccontextmanager
async def spawn(spec: ChildSpec) -> AsyncIterator[Child]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=spec.env,
            cwd=spec.cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if spec.cwd is not None and exc.filename == spec.cwd:
            raise RuntimeError_(f"working directory does not exist: {spec.cwd}") from None
        raise RuntimeError_(f"command not found: {spec.argv[0]!r}") from None
    except PermissionError:
        raise RuntimeError_(f"command is not executable: {spec.argv[0]!r}") from None
    child = Child(spec, proc, Deadline(spec.timeout_sec))
    child._stdin_task = asyncio.create_task(child._feed_stdin())
    child._stderr_task = asyncio.create_task(child._collect_stderr())
    try:
        yield child
    finally:
        await child.close()
