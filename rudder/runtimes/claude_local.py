"""The `claude_local` runtime: the Claude Code CLI in print mode with streaming JSON output.

Runs `claude --print --output-format stream-json --verbose [--resume ID] ...` with the prompt on
stdin. The fields read from each line are listed in docs/runtimes.md; everything else is ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from ._child import ChildSpec, child_env, resolve_command
from ._cli import run_cli
from ._payload import cli_prompt
from ._secrets import Redactor, redacting, resolve_values
from .base import RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import ClaudeLocalConfig, run_config
from .process import run_env

NAME = "Claude Code"
# Set inside a Claude Code session; a nested CLI that inherits them behaves as a sub-agent.
_NESTING_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")


def claude_args(
    config: ClaudeLocalConfig, system_prompt: str | None, resume: str | None
) -> list[str]:
    args = ["--print", "--output-format", "stream-json", "--verbose"]
    if resume:
        args += ["--resume", resume]
    if config.model:
        args += ["--model", config.model]
    if config.max_turns:
        args += ["--max-turns", str(config.max_turns)]
    if system_prompt:
        args += ["--append-system-prompt", system_prompt]
    return [*args, *config.extra_args]


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict)
        ).strip()
    return ""


class ClaudeStreamParser:
    """Claude Code `stream-json` lines → run events."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.text_seen = False
        self.result_seen = False

    def line(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        kind = obj.get("type")
        if kind == "system" and obj.get("subtype") == "init":
            yield from self._session(obj.get("session_id"), obj.get("model"))
        elif kind == "assistant":
            yield from self._assistant(obj.get("message") or {})
        elif kind == "user":
            yield from self._user(obj.get("message") or {})
        elif kind == "result":
            yield from self._result(obj)

    def finish(self) -> None:
        if not self.result_seen:
            raise RuntimeError_(f"{NAME} ended without a result")

    def _session(self, session_id: Any, model: Any = None) -> Iterator[RunEvent]:
        if isinstance(session_id, str) and session_id and session_id != self.session_id:
            self.session_id = session_id
            data = {"session_id": session_id}
            if isinstance(model, str):
                data["model"] = model
            yield RunEvent(RunEventKind.SESSION, data=data)

    def _assistant(self, message: dict[str, Any]) -> Iterator[RunEvent]:
        separated = False
        for block in message.get("content") or []:
            block_type = block.get("type")
            if block_type == "text" and block.get("text"):
                # Text from separate turns (around tool calls) would otherwise run together.
                prefix = "\n\n" if self.text_seen and not separated else ""
                separated = True
                self.text_seen = True
                yield RunEvent(RunEventKind.TEXT, text=prefix + block["text"])
            elif block_type == "thinking" and block.get("thinking"):
                yield RunEvent(RunEventKind.THINKING, text=block["thinking"])
            elif block_type == "tool_use":
                data = {
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "input": block.get("input"),
                }
                yield RunEvent(RunEventKind.TOOL_CALL, text=str(block.get("name") or ""), data=data)

    def _user(self, message: dict[str, Any]) -> Iterator[RunEvent]:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                data = {
                    "tool_use_id": block.get("tool_use_id"),
                    "content": _tool_result_text(block.get("content")),
                    "is_error": bool(block.get("is_error")),
                }
                yield RunEvent(RunEventKind.TOOL_RESULT, data=data)

    def _result(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        self.result_seen = True
        yield from self._session(obj.get("session_id"))
        usage = obj.get("usage") or {}
        yield RunEvent(
            RunEventKind.USAGE,
            data={
                "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "cached_input_tokens": usage.get("cache_read_input_tokens"),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens"),
                "cost_usd": obj.get("total_cost_usd"),
                "num_turns": obj.get("num_turns"),
                "duration_ms": obj.get("duration_ms"),
            },
        )
        subtype = obj.get("subtype")
        result = obj.get("result")
        if obj.get("is_error") or subtype != "success":
            detail = result if isinstance(result, str) and result else subtype
            raise RuntimeError_(f"{NAME} failed: {detail}")
        if not self.text_seen and isinstance(result, str) and result:
            self.text_seen = True
            yield RunEvent(RunEventKind.TEXT, text=result)


class ClaudeLocalRuntime:
    type_name = "claude_local"

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]:
        redactor = Redactor()
        return redacting(self._stream(ctx, redactor), redactor)

    async def _stream(self, ctx: RunContext, redactor: Redactor) -> AsyncGenerator[RunEvent, None]:
        config = run_config(ClaudeLocalConfig, ctx.runtime_config)
        command = resolve_command(config.command)
        env = child_env(
            {**run_env(ctx), **await resolve_values(ctx, config.env, redactor)}, drop=_NESTING_ENV
        )
        system_prompt = "\n\n".join(p for p in (ctx.instructions, config.system_prompt) if p)

        def build(resume: str | None) -> ChildSpec:
            return ChildSpec(
                argv=[command, *claude_args(config, system_prompt or None, resume)],
                env=env,
                stdin=cli_prompt(ctx, resuming=resume is not None).encode(),
                timeout_sec=config.timeout_sec,
                grace_sec=config.grace_sec,
                cwd=config.cwd,
            )

        events = run_cli(NAME, ctx.session_id, build, ClaudeStreamParser)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
