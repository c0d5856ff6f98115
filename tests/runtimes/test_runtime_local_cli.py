from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from rudder.runtimes.base import AgentRuntime, RunEvent, RunEventKind, RuntimeError_
from rudder.runtimes.claude_local import ClaudeLocalRuntime
from rudder.runtimes.codex_local import CodexLocalRuntime

from .runtime_helpers import FAKES, collect, make_context, read_pids, text_of, wait_gone

claude = ClaudeLocalRuntime()
codex = CodexLocalRuntime()


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Puts fake `claude` and `codex` executables first on PATH; returns their call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex"):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "fake_cli.py"}" "$@"\n')
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return tmp_path / "calls.jsonl"


def cli_config(record: Path, fixture: str, **extra: Any) -> dict[str, Any]:
    env = {"FAKE_CLI_FIXTURE": fixture, "FAKE_CLI_RECORD": str(record), **extra.pop("env", {})}
    return {"env": env, **extra}


def calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


async def test_claude_hello(record: Path) -> None:
    config = cli_config(record, "claude_local__hello", model="sonnet", max_turns=3)
    events = await collect(claude, make_context(config, "status?"))
    assert [e.kind for e in events] == [RunEventKind.SESSION, RunEventKind.TEXT, RunEventKind.USAGE]
    assert events[0].data["session_id"] == "5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60"
    assert text_of(events) == "Hello Ada! The build is green."
    usage = events[-1].data
    assert usage["cost_usd"] == 0.0127 and usage["input_tokens"] == 4
    assert usage["output_tokens"] == 11 and usage["cached_input_tokens"] == 12013
    (call,) = calls(record)
    assert call["argv"][:4] == ["--print", "--output-format", "stream-json", "--verbose"]
    assert "--resume" not in call["argv"]
    assert call["argv"][4:] == [
        "--model",
        "sonnet",
        "--max-turns",
        "3",
        "--append-system-prompt",
        "Be brief.",
    ]
    # A fresh session gets the earlier messages too.
    assert "[Ada] earlier question" in call["stdin"] and call["stdin"].endswith("status?")


async def test_claude_tools_thinking_and_resume(record: Path) -> None:
    ctx = make_context(cli_config(record, "claude_local__tools"), "ls?", session_id="s-prev")
    events = await collect(claude, ctx)
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.THINKING,
        RunEventKind.TEXT,
        RunEventKind.TOOL_CALL,
        RunEventKind.TOOL_RESULT,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[3].data["input"] == {"command": "ls", "description": "List files"}
    assert events[4].data["content"] == "README.md\nsrc" and events[4].data["is_error"] is False
    assert text_of(events) == "Let me look.\n\nThere are two entries: README.md and src."
    (call,) = calls(record)
    assert call["argv"][4:6] == ["--resume", "s-prev"]
    assert call["stdin"] == "ls?"  # the session already holds the conversation


async def test_claude_failed_result_fails_after_usage(record: Path) -> None:
    events: list[RunEvent] = []
    with pytest.raises(RuntimeError_, match="Claude Code failed: error_max_turns"):
        async for event in claude.stream(make_context(cli_config(record, "claude_local__failed"))):
            events.append(event)
    assert text_of(events) == "Working on it"
    assert events[-1].kind is RunEventKind.USAGE and events[-1].data["cost_usd"] == 0.02


@pytest.mark.parametrize(
    ("runtime", "fixture", "flag"),
    [(claude, "claude_local__hello", "--resume"), (codex, "codex_local__hello", "resume")],
)
async def test_an_unknown_session_is_retried_once_fresh(
    record: Path, runtime: AgentRuntime, fixture: str, flag: str
) -> None:
    ctx = make_context(cli_config(record, fixture), "again", session_id="stale-1")
    events = await collect(runtime, ctx)
    assert text_of(events) == "Hello Ada! The build is green."
    first, second = calls(record)
    assert first["argv"][first["argv"].index(flag) + 1] == "stale-1"
    assert flag not in second["argv"]
    assert "earlier question" in second["stdin"]
    assert any(e.kind is RunEventKind.LOG and "stale-1" in e.text for e in events)


async def test_a_missing_cli_is_named(record: Path) -> None:
    config = cli_config(record, "claude_local__hello", command="claude-not-installed")
    with pytest.raises(RuntimeError_, match="command not found: 'claude-not-installed'"):
        await collect(claude, make_context(config))


async def test_non_json_output_without_a_result_fails_readably(record: Path) -> None:
    config = cli_config(record, "claude_local__hello", command="python", extra_args=[])
    # `python --print ...` is not Claude: it prints usage text and exits non-zero.
    with pytest.raises(RuntimeError_, match="Claude Code: the agent process exited with code 2"):
        await collect(claude, make_context(config))


async def test_stop_mid_stream_ends_the_cli(record: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "cli.pid"
    config = cli_config(
        record, "claude_local__tools", env={"FAKE_CLI_HANG": str(pid_file)}, grace_sec=1
    )
    seen: list[RunEvent] = []

    async def run() -> None:
        async for event in claude.stream(make_context(config)):
            seen.append(event)

    task = asyncio.create_task(run())
    pids = await read_pids(pid_file)  # every line was printed; the CLI now hangs
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(pids) == []
    assert "There are two entries" in text_of(seen)


async def test_a_hanging_cli_times_out(record: Path, tmp_path: Path) -> None:
    config = cli_config(
        record, "codex_local__hello", env={"FAKE_CLI_HANG": str(tmp_path / "p")}, timeout_sec=0.5
    )
    with pytest.raises(RuntimeError_, match=r"timed out after 0\.5 s"):
        await collect(codex, make_context(config))
    assert await wait_gone(await read_pids(tmp_path / "p")) == []


async def test_codex_hello(record: Path) -> None:
    config = cli_config(record, "codex_local__hello", model="gpt-5-codex", system_prompt="Be kind.")
    events = await collect(codex, make_context(config, "status?"))
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.THINKING,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[0].data == {"session_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}
    assert events[-1].data == {
        "input_tokens": 24763,
        "output_tokens": 122,
        "cached_input_tokens": 24448,
    }
    (call,) = calls(record)
    assert call["argv"] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model",
        "gpt-5-codex",
        "-",
    ]
    assert call["stdin"].startswith("Be brief.\n\nBe kind.\n\nConversation so far:")


async def test_codex_tools_and_resume(record: Path) -> None:
    ctx = make_context(cli_config(record, "codex_local__tools"), "fix it", session_id="t-1")
    events = await collect(codex, ctx)
    kinds = [e.kind for e in events]
    assert kinds == [
        RunEventKind.SESSION,
        RunEventKind.THINKING,
        RunEventKind.TOOL_CALL,
        RunEventKind.TOOL_RESULT,
        RunEventKind.TOOL_CALL,
        RunEventKind.TOOL_RESULT,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[2].data["input"]["command"] == "bash -lc ls"
    assert events[3].data["content"] == "README.md\nsrc\n" and events[3].data["exit_code"] == 0
    assert events[4].text == "file_change"
    (call,) = calls(record)
    assert call["argv"][-3:] == ["resume", "t-1", "-"]
    assert call["stdin"] == "fix it"


async def test_codex_failed_turn(record: Path) -> None:
    with pytest.raises(RuntimeError_, match="Codex failed: stream error: unexpected status 401"):
        await collect(codex, make_context(cli_config(record, "codex_local__failed")))
