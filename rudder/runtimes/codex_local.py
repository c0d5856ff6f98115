"""The `codex_local` runtime: the Codex CLI run non-interactively with JSON event output.

Runs `codex exec --json [OPTIONS] [resume ID] -` with the prompt on stdin. This reads the
`thread.* / turn.* / item.*` event stream; the fields used are listed in docs/runtimes.md.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from ._child import ChildSpec, child_env, resolve_command
from ._cli import SessionState, per_run, run_cli
from ._payload import cli_prompt
from ._secrets import Redactor, redacting, resolve_values
from .base import RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import CodexLocalConfig, run_config
from .process import run_env

NAME = "Codex"
# Items that are the agent acting (a shell command, a patch, a tool); they go to the transcript.
_TOOL_ITEMS = frozenset(
    {"command_execution", "file_change", "mcp_tool_call", "web_search", "todo_list"}
)
# `turn.completed` usage is the thread's running total; these are made per run.
_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")
# Codex keeps a session's first instructions (its developer message) for good, so changed ones
# are said in the prompt of the next resumed run; a checksum in the session slot tells a change.
_INSTRUCTIONS_KEY = "instructions_crc"
_CHANGED_INSTRUCTIONS = "Your instructions have changed. From now on, follow these:"


def instructions_crc(text: str) -> float:
    return float(zlib.crc32(text.encode()))


def codex_args(config: CodexLocalConfig, resume: str | None) -> list[str]:
    args = ["exec", "--json"]
    if config.skip_git_repo_check:
        args.append("--skip-git-repo-check")
    if config.model:
        args += ["--model", config.model]
    args += config.extra_args
    if resume:
        args += ["resume", resume]
    return [*args, "-"]  # "-": read the prompt from stdin


def _tool_input(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("aggregated_output", "status", "exit_code")}


class CodexStreamParser:
    """`codex exec --json` lines → run events."""

    def __init__(self, previous: SessionState | None = None, crc: float | None = None) -> None:
        self.previous = previous
        self.crc = crc
        self.thread_id: str | None = None
        self.text_seen = False
        self.completed = False
        self.last_error: str | None = None
        self._announced: set[str] = set()

    def line(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        kind = obj.get("type")
        if kind == "thread.started" and isinstance(obj.get("thread_id"), str):
            self.thread_id = obj["thread_id"]
            # Resuming: the slot keeps the totals so far until this turn's are known, so a stop
            # mid-turn does not leave the next run billed the whole thread.
            same = self.previous is not None and self.previous.id == self.thread_id
            stored = self.previous.encode() if same and self.previous else obj["thread_id"]
            yield RunEvent(RunEventKind.SESSION, data={"session_id": stored})
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item")
            if isinstance(item, dict):
                yield from self._item(item, completed=kind == "item.completed")
        elif kind == "turn.completed":
            self.completed = True
            yield from self._usage(obj.get("usage") or {})
        elif kind == "turn.failed":
            error = obj.get("error") or {}
            raise RuntimeError_(f"{NAME} failed: {error.get('message') or self.last_error}")
        elif kind == "error":
            # Also used for transient trouble (reconnecting); the turn's own end decides.
            self.last_error = str(obj.get("message") or "")
            yield RunEvent(RunEventKind.LOG, text=self.last_error)

    def progress(self, obj: dict[str, Any]) -> bool:
        if obj.get("type") == "error":
            return False  # "Reconnecting…": the turn is not getting anywhere
        item = obj.get("item")
        return not (isinstance(item, dict) and item.get("type") == "error")

    def _usage(self, usage: dict[str, Any]) -> Iterator[RunEvent]:
        same = self.previous is not None and self.previous.id == self.thread_id
        previous = self.previous if same else None
        data = {k: per_run(usage.get(k), previous, k) for k in _USAGE_KEYS if k in usage}
        if previous is not None and not previous.totals:
            data["session_totals"] = True  # resumed without the totals before: cumulative
        yield RunEvent(RunEventKind.USAGE, data=data)
        if self.thread_id:
            totals = {k: float(usage[k]) for k in _USAGE_KEYS if isinstance(usage.get(k), int)}
            if self.crc is not None:
                totals[_INSTRUCTIONS_KEY] = self.crc
            state = SessionState(self.thread_id, totals)
            yield RunEvent(RunEventKind.SESSION, data={"session_id": state.encode()})

    def finish(self) -> None:
        if not self.completed:
            detail = f": {self.last_error}" if self.last_error else ""
            raise RuntimeError_(f"{NAME} ended without completing the turn{detail}")

    def _item(self, item: dict[str, Any], *, completed: bool) -> Iterator[RunEvent]:
        item_type = item.get("type")
        item_id = str(item.get("id") or "")
        if item_type == "agent_message" and completed and item.get("text"):
            prefix = "\n\n" if self.text_seen else ""
            self.text_seen = True
            yield RunEvent(RunEventKind.TEXT, text=prefix + str(item["text"]))
        elif item_type == "reasoning" and completed and item.get("text"):
            yield RunEvent(RunEventKind.THINKING, text=str(item["text"]))
        elif item_type in _TOOL_ITEMS:
            if item_id not in self._announced:
                self._announced.add(item_id)
                data = {"id": item_id, "name": item_type, "input": _tool_input(item)}
                yield RunEvent(RunEventKind.TOOL_CALL, text=str(item_type), data=data)
            if completed:
                exit_code = item.get("exit_code")
                failed = item.get("status") == "failed" or exit_code not in (None, 0)
                data = {
                    "tool_use_id": item_id,
                    "content": item.get("aggregated_output", ""),
                    "is_error": failed,
                    "exit_code": exit_code,
                }
                yield RunEvent(RunEventKind.TOOL_RESULT, data=data)
        elif item_type == "error" and item.get("message"):
            yield RunEvent(RunEventKind.LOG, text=str(item["message"]))


class CodexLocalRuntime:
    type_name = "codex_local"

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]:
        redactor = Redactor()
        return redacting(self._stream(ctx, redactor), redactor)

    async def _stream(self, ctx: RunContext, redactor: Redactor) -> AsyncGenerator[RunEvent, None]:
        config = run_config(CodexLocalConfig, ctx.runtime_config)
        command = resolve_command(config.command)
        env = child_env({**run_env(ctx), **await resolve_values(ctx, config.env, redactor)})
        # `codex exec` has no flag for extra instructions, so a fresh session gets them in front
        # of the prompt; a resumed one already has them.
        preamble = "\n\n".join(p for p in (ctx.instructions, config.system_prompt) if p)
        previous = SessionState.decode(ctx.session_id)
        crc = instructions_crc(preamble) if preamble else None
        said = previous.totals.get(_INSTRUCTIONS_KEY) if previous else None

        def build(resume: str | None) -> ChildSpec:
            prompt = cli_prompt(ctx, resuming=resume is not None, preamble=preamble or None)
            if resume is not None and crc is not None and said is not None and said != crc:
                prompt = f"{_CHANGED_INSTRUCTIONS}\n\n{preamble}\n\nNew message:\n{prompt}"
            return ChildSpec(
                argv=[command, *codex_args(config, resume)],
                env=env,
                stdin=prompt.encode(),
                timeout_sec=config.timeout_sec,
                grace_sec=config.grace_sec,
                cwd=config.cwd,
            )

        def parser() -> CodexStreamParser:
            return CodexStreamParser(previous, crc)

        resume = previous.id if previous else None
        events = run_cli(NAME, resume, build, parser, idle_sec=config.idle_timeout_sec)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
