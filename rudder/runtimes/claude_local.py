"""The `claude_local` runtime: the Claude Code CLI in print mode with streaming JSON output.

Runs `claude --print --output-format stream-json --verbose [--resume ID] ...` with the prompt on
stdin. The fields read from each line are listed in docs/runtimes.md; everything else is ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from ._child import ChildSpec, child_env, resolve_command
from ._cli import UNKNOWN_SESSION, SessionLost, SessionState, per_run, run_cli
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
    args = ["--print", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
    if resume:
        args += ["--resume", resume]
    if config.model:
        args += ["--model", config.model]
    if config.max_turns:
        args += ["--max-turns", str(config.max_turns)]
    if system_prompt:
        args += ["--append-system-prompt", system_prompt]
        if config.fresh_system_prompt:
            args += ["--system-prompt-snapshot", "off"]
    return [*args, *config.extra_args]


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict)
        ).strip()
    return ""


def _message_text(message: dict[str, Any]) -> str:
    blocks = message.get("content") or []
    return " ".join(
        str(b.get("text")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"
    ).strip()


def _is_error_message(obj: dict[str, Any], message: dict[str, Any]) -> bool:
    """The CLI's own error dressed as an assistant message (a bad key, an API failure)."""
    return bool(
        obj.get("error") or obj.get("is_api_error_message") or message.get("model") == "<synthetic>"
    )


class ClaudeStreamParser:
    """Claude Code `stream-json` lines (with partial messages) → run events."""

    def __init__(self, previous: SessionState | None = None) -> None:
        self.previous = previous
        self.session_id: str | None = None
        self.text_seen = False
        self.result_seen = False
        self.cost_total: float | None = None
        self.error_text: str | None = None
        # Messages whose text already arrived as deltas: their final copy is not text again.
        self._streamed: set[str] = set()
        self._block_is_text: dict[int, bool] = {}
        self._block_started = False

    def progress(self, obj: dict[str, Any]) -> bool:
        return obj.get("type") != "system" or obj.get("subtype") == "init"

    def line(self, obj: dict[str, Any]) -> Iterator[RunEvent]:
        kind = obj.get("type")
        subtype = obj.get("subtype")
        if kind == "system" and subtype == "init":
            yield from self._session(obj.get("session_id"), obj.get("model"))
        elif kind == "system" and subtype == "api_retry":
            yield RunEvent(RunEventKind.LOG, text=_retry_text(obj), data={"retry": True})
        elif kind == "stream_event" and obj.get("parent_tool_use_id") is None:
            yield from self._partial(obj.get("event") or {})
        elif kind == "assistant":
            message = obj.get("message") or {}
            if _is_error_message(obj, message):
                self.error_text = _message_text(message) or str(obj.get("error") or "")
                data = {"error": obj.get("error")}
                yield RunEvent(RunEventKind.LOG, text=self.error_text, data=data)
            else:
                yield from self._assistant(message)
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

    def _partial(self, event: dict[str, Any]) -> Iterator[RunEvent]:
        etype = event.get("type")
        if etype == "message_start":
            message_id = (event.get("message") or {}).get("id")
            if isinstance(message_id, str):
                self._streamed.add(message_id)
            self._block_is_text = {}
        elif etype == "content_block_start":
            block = event.get("content_block") or {}
            self._block_is_text[int(event.get("index") or 0)] = block.get("type") == "text"
            self._block_started = True
        elif etype == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                # Text from separate blocks or turns (around tool calls) would run together.
                prefix = "\n\n" if self.text_seen and self._block_started else ""
                self._block_started = False
                self.text_seen = True
                yield RunEvent(RunEventKind.TEXT, text=prefix + str(delta["text"]))

    def _assistant(self, message: dict[str, Any]) -> Iterator[RunEvent]:
        streamed = message.get("id") in self._streamed
        separated = False
        for block in message.get("content") or []:
            block_type = block.get("type")
            if block_type == "text" and block.get("text") and not streamed:
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
        errors = [str(e) for e in obj.get("errors") or [] if e]
        if errors and any(UNKNOWN_SESSION.search(e) for e in errors):
            # Nothing of this attempt is kept: not the dead id, not its empty usage.
            raise SessionLost(f"{NAME} failed: {'; '.join(errors)}")
        subtype = obj.get("subtype")
        result = obj.get("result")
        failed = bool(obj.get("is_error")) or subtype != "success"
        session_id = obj.get("session_id") or self.session_id
        yield from self._session(session_id)
        yield RunEvent(RunEventKind.USAGE, data=self._usage(obj))
        if isinstance(self.session_id, str) and self.cost_total is not None:
            # The session slot carries the running cost, so the next run is billed its own part.
            state = SessionState(self.session_id, {"cost_usd": self.cost_total})
            yield RunEvent(RunEventKind.SESSION, data={"session_id": state.encode()})
        if failed:
            detail = "; ".join(errors) or self.error_text
            if not detail:
                detail = result if isinstance(result, str) and result else str(subtype)
            status = obj.get("api_error_status")
            if isinstance(status, int) and f"{status}" not in detail:
                detail += f" (HTTP {status})"
            raise RuntimeError_(f"{NAME} failed: {detail}")
        if not self.text_seen and isinstance(result, str) and result:
            self.text_seen = True
            yield RunEvent(RunEventKind.TEXT, text=result)

    def _usage(self, obj: dict[str, Any]) -> dict[str, Any]:
        usage = obj.get("usage") or {}
        total = obj.get("total_cost_usd")
        if isinstance(total, int | float):
            self.cost_total = float(total)
        # `total_cost_usd` grows over a resumed session; this run's own cost is what the CLI
        # counted since its last result, else the growth since the previous run's total.
        since = obj.get("model_usage_since_last_result")
        if isinstance(since, dict) and since:
            costs = [m.get("costUSD") for m in since.values() if isinstance(m, dict)]
            cost: Any = round(sum(c for c in costs if isinstance(c, int | float)), 8)
        else:
            same = self.previous is not None and self.previous.id == self.session_id
            cost = per_run(total, self.previous if same else None, "cost_usd")
        return {
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "cached_input_tokens": usage.get("cache_read_input_tokens"),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens"),
            "cost_usd": cost,
            "num_turns": obj.get("num_turns"),
            "duration_ms": obj.get("duration_ms"),
        }


def _retry_text(obj: dict[str, Any]) -> str:
    attempt, most = obj.get("attempt"), obj.get("max_retries")
    status = obj.get("error_status")
    what = obj.get("error") or (f"HTTP {status}" if status else "an API error")
    delay = obj.get("retry_delay_ms")
    after = f" in {int(delay) / 1000:g} s" if isinstance(delay, int | float) else ""
    return f"{NAME} retries the model API{after} (attempt {attempt}/{most}): {what}"


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
        previous = SessionState.decode(ctx.session_id)

        def build(resume: str | None) -> ChildSpec:
            return ChildSpec(
                argv=[command, *claude_args(config, system_prompt or None, resume)],
                env=env,
                stdin=cli_prompt(ctx, resuming=resume is not None).encode(),
                timeout_sec=config.timeout_sec,
                grace_sec=config.grace_sec,
                cwd=config.cwd,
            )

        def parser() -> ClaudeStreamParser:
            return ClaudeStreamParser(previous)

        resume = previous.id if previous else None
        events = run_cli(NAME, resume, build, parser, idle_sec=config.idle_timeout_sec)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
