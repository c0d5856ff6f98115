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
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
        RunEventKind.SESSION,
    ]
    assert events[0].data["session_id"] == "5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60"
    # The session slot also keeps the running cost, for the next run's own share.
    assert events[-1].data["session_id"] == "5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60#cost_usd=0.0127"
    assert text_of(events) == "Hello Ada! The build is green."
    usage = events[2].data
    assert usage["cost_usd"] == 0.0127 and usage["input_tokens"] == 4
    assert usage["output_tokens"] == 11 and usage["cached_input_tokens"] == 12013
    (call,) = calls(record)
    assert call["argv"][:5] == [
        "--print",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    assert "--resume" not in call["argv"]
    assert call["argv"][5:] == [
        "--model",
        "sonnet",
        "--max-turns",
        "3",
        "--append-system-prompt",
        "Be brief.",
        "--system-prompt-snapshot",
        "off",
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
        RunEventKind.SESSION,
    ]
    assert events[3].data["input"] == {"command": "ls", "description": "List files"}
    assert events[4].data["content"] == "README.md\nsrc" and events[4].data["is_error"] is False
    assert text_of(events) == "Let me look.\n\nThere are two entries: README.md and src."
    (call,) = calls(record)
    assert call["argv"][5:7] == ["--resume", "s-prev"]
    assert call["stdin"] == "ls?"  # the session already holds the conversation


async def test_claude_failed_result_fails_after_usage(record: Path) -> None:
    events: list[RunEvent] = []
    with pytest.raises(RuntimeError_, match="Claude Code failed: error_max_turns"):
        async for event in claude.stream(make_context(cli_config(record, "claude_local__failed"))):
            events.append(event)
    assert text_of(events) == "Working on it"
    (usage,) = [e for e in events if e.kind is RunEventKind.USAGE]
    assert usage.data["cost_usd"] == 0.02


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
    everything = await collect(codex, make_context(config, "status?"))
    # Codex's own warning on stderr is a log line of the transcript, never text.
    (warning,) = [e for e in everything if e.kind is RunEventKind.LOG]
    assert warning.text.startswith("WARNING: proceeding") and warning.data["stream"] == "stderr"
    events = [e for e in everything if e.kind is not RunEventKind.LOG]
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.THINKING,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
        RunEventKind.SESSION,
    ]
    assert events[0].data == {"session_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}
    assert events[3].data == {
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
    events = [e for e in await collect(codex, ctx) if e.kind is not RunEventKind.LOG]
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
        RunEventKind.SESSION,
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


# What the real CLIs print (captured from Claude Code 2.1.328 and Codex 0.169.0).


async def test_claude_partial_messages_stream_as_deltas(record: Path) -> None:
    events = await collect(claude, make_context(cli_config(record, "claude_local__stream")))
    texts = [e.text for e in events if e.kind is RunEventKind.TEXT]
    # Each text delta is passed on; the complete message that follows is not text again.
    assert texts == ["Hello t", "here, t", "his is ", "streame", "d text."]
    (usage,) = [e.data for e in events if e.kind is RunEventKind.USAGE]
    assert (usage["input_tokens"], usage["output_tokens"]) == (202, 15)
    assert usage["cost_usd"] == 0.001108  # from model_usage_since_last_result


async def test_claude_cost_is_per_run_when_the_cli_reports_the_session_total(
    record: Path,
) -> None:
    # This fixture has only `total_cost_usd` (0.0127): the previous run's total is subtracted.
    ctx = make_context(
        cli_config(record, "claude_local__hello"),
        session_id="5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60#cost_usd=0.01",
    )
    events = await collect(claude, ctx)
    (usage,) = [e.data for e in events if e.kind is RunEventKind.USAGE]
    assert usage["cost_usd"] == 0.0027
    assert calls(record)[0]["argv"][5:7] == ["--resume", "5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60"]


async def test_claude_synthetic_error_message_is_not_a_reply(record: Path) -> None:
    config = cli_config(record, "claude_local__bad_key", env={"FAKE_CLI_EXIT": "1"})
    events: list[RunEvent] = []
    with pytest.raises(RuntimeError_) as raised:
        async for event in claude.stream(make_context(config)):
            events.append(event)
    assert (
        str(raised.value) == "Claude Code failed: Invalid API key · Fix external API key (HTTP 401)"
    )
    assert text_of(events) == ""
    assert any(e.kind is RunEventKind.LOG and "Invalid API key" in e.text for e in events)


async def test_claude_api_retries_are_log_lines(record: Path) -> None:
    events = await collect(claude, make_context(cli_config(record, "claude_local__retry")))
    retries = [e for e in events if e.kind is RunEventKind.LOG and e.data.get("retry")]
    assert [e.text for e in retries] == [
        "Claude Code retries the model API in 0.518 s (attempt 1/10): overloaded",
        "Claude Code retries the model API in 1.093 s (attempt 2/10): overloaded",
    ]
    assert text_of(events) == "Hello there, this is streamed text."


async def test_claude_lost_session_result_line_is_retried_fresh(record: Path) -> None:
    ctx = make_context(cli_config(record, "claude_local__stream"), "again", session_id="stale-9")
    events = await collect(claude, ctx)
    sessions = [e.data["session_id"] for e in events if e.kind is RunEventKind.SESSION]
    assert sessions and not any(s.startswith("stale-9") for s in sessions)  # the dead id is gone
    first, second = calls(record)
    assert "--resume" in first["argv"] and "--resume" not in second["argv"]
    assert "earlier question" in second["stdin"]
    assert text_of(events) == "Hello there, this is streamed text."


async def test_codex_usage_is_per_run_from_the_threads_totals(record: Path) -> None:
    previous = "0199a213-81c0-7800-8aa1-bbab2a035a53#cached_input_tokens=24000,input_tokens=24000,output_tokens=100"
    ctx = make_context(cli_config(record, "codex_local__hello"), session_id=previous)
    events = await collect(codex, ctx)
    (usage,) = [e.data for e in events if e.kind is RunEventKind.USAGE]
    assert usage == {"input_tokens": 763, "output_tokens": 22, "cached_input_tokens": 448}
    assert calls(record)[0]["argv"][-3:] == ["resume", "0199a213-81c0-7800-8aa1-bbab2a035a53", "-"]
    sessions = [e.data["session_id"] for e in events if e.kind is RunEventKind.SESSION]
    assert sessions[0] == previous  # a stop mid-turn keeps the totals so far
    last = sessions[-1]
    assert last.startswith("0199a213-81c0-7800-8aa1-bbab2a035a53#cached_input_tokens=24448,")
    assert ",input_tokens=24763," in last and ",output_tokens=122" in last


async def test_codex_lost_session_backtrace_is_not_kept(record: Path) -> None:
    ctx = make_context(cli_config(record, "codex_local__hello"), session_id="stale-3")
    events = await collect(codex, ctx)
    logs = [e.text for e in events if e.kind is RunEventKind.LOG]
    assert any("no rollout found for thread id stale-3" in t for t in logs)
    assert not any("backtrace" in t.lower() or "<unknown>" in t for t in logs), logs
    assert text_of(events) == "Hello Ada! The build is green."


async def test_a_cli_that_only_reconnects_trips_the_watchdog(record: Path) -> None:
    config = cli_config(
        record, "codex_local__hello", env={"FAKE_CLI_RECONNECT": "20"}, idle_timeout_sec=1
    )
    with pytest.raises(RuntimeError_) as raised:
        await collect(codex, make_context(config))
    reason = str(raised.value)
    assert reason.startswith("Codex made no progress for 1 s; it last said: ")
    assert "Reconnecting... waiting for network" in reason


async def test_codex_hears_of_changed_instructions_on_resume(record: Path) -> None:
    first = await collect(codex, make_context(cli_config(record, "codex_local__hello")))
    stored = [e.data["session_id"] for e in first if e.kind is RunEventKind.SESSION][-1]
    assert "instructions_crc=" in stored
    same = make_context(cli_config(record, "codex_local__hello"), "next", session_id=stored)
    await collect(codex, same)
    assert calls(record)[1]["stdin"] == "next"  # unchanged: the session has them
    changed = make_context(
        cli_config(record, "codex_local__hello"),
        "next",
        session_id=stored,
        instructions="Answer in French.",
    )
    await collect(codex, changed)
    assert calls(record)[2]["stdin"] == (
        "Your instructions have changed. From now on, follow these:\n\n"
        "Answer in French.\n\nNew message:\nnext"
    )


async def test_the_watchdog_waits_for_a_running_tool(record: Path) -> None:
    # Line 4 starts a shell command; the CLI is then silent for 1.5 s, as during a long build.
    config = cli_config(
        record, "codex_local__tools", env={"FAKE_CLI_PAUSE": "4:1500"}, idle_timeout_sec=0.8
    )
    events = await collect(codex, make_context(config))
    assert text_of(events) == "Updated README.md."
    # The same silence outside a tool call is a stall.
    config = cli_config(
        record, "codex_local__tools", env={"FAKE_CLI_PAUSE": "2:1500"}, idle_timeout_sec=0.8
    )
    with pytest.raises(RuntimeError_, match=r"Codex made no progress for 0\.8 s"):
        await collect(codex, make_context(config))
