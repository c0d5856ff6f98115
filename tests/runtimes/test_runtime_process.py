from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from rudder.runtimes.base import RunEvent, RunEventKind, RuntimeError_
from rudder.runtimes.process import ProcessRuntime

from .runtime_helpers import (
    collect,
    fake_agent,
    make_context,
    pid_alive,
    read_pids,
    text_of,
    wait_gone,
)

runtime = ProcessRuntime()


async def test_plain_text_deltas_stream_as_they_arrive(tmp_path: Path) -> None:
    go_on = tmp_path / "go-on"
    events = []
    async for event in runtime.stream(make_context(fake_agent("text", str(go_on)))):
        events.append(event)
        # The agent writes no newline and waits for this file: the first delta came early.
        go_on.touch()
    assert [e.kind for e in events] == [RunEventKind.TEXT] * len(events)
    assert events[0].text == "Hello"
    assert text_of(events) == "Hello, world"


async def test_jsonl_events_are_mapped() -> None:
    events = await collect(runtime, make_context(fake_agent("jsonl")))
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.THINKING,
        RunEventKind.TOOL_CALL,
        RunEventKind.TOOL_RESULT,
        RunEventKind.TEXT,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[0].data == {"session_id": "sess-1"}
    assert events[2].text == "search" and events[2].data["input"] == {"q": "rudder"}
    assert text_of(events) == "Hello there"
    assert events[-1].data == {"input_tokens": 10, "output_tokens": 3, "cost_usd": 0.001}


async def test_the_context_arrives_on_stdin() -> None:
    ctx = make_context(fake_agent("context"), "what now?", session_id="s-9")
    sent = json.loads(text_of(await collect(runtime, ctx)))
    assert sent == {
        "run_id": "run-1",
        "agent": {"id": "agent-1", "name": "Helper", "instructions": "Be brief."},
        "conversation_id": "conv-1",
        "messages": [
            {"role": "user", "body": "earlier question", "author": "Ada"},
            {"role": "assistant", "body": "earlier answer", "author": None},
            {"role": "user", "body": "what now?", "author": "Ada"},
        ],
        "prompt": "what now?",
        "session_id": "s-9",
    }


async def test_secret_refs_in_env_are_resolved() -> None:
    config = fake_agent("env", "TOKEN", env={"TOKEN": {"secret": "API_TOKEN"}})
    ctx = make_context(config, secrets={"API_TOKEN": "tok-123456"})
    assert text_of(await collect(runtime, ctx)) == "tok-123456"


async def test_rudder_own_settings_do_not_reach_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUDDER_SECRETS_KEY", "master-key")
    events = await collect(runtime, make_context(fake_agent("env", "RUDDER_SECRETS_KEY")))
    assert text_of(events) == "<unset>"
    events = await collect(runtime, make_context(fake_agent("env", "RUDDER_RUN_ID")))
    assert text_of(events) == "run-1"


async def test_a_crash_fails_with_exit_code_and_stderr_and_keeps_streamed_text() -> None:
    config = fake_agent("crash", env={"TOKEN": {"secret": "API_TOKEN"}})
    ctx = make_context(config, secrets={"API_TOKEN": "tok-SECRET-99"})
    events: list[RunEvent] = []
    with pytest.raises(RuntimeError_) as failure:
        async for event in runtime.stream(ctx):
            events.append(event)
    assert text_of(events) == "partial answer"
    reason = str(failure.value)
    assert "exited with code 2" in reason
    assert "boom: the model broke" in reason
    assert "tok-SECRET-99" not in reason and "***" in reason


async def test_a_missing_secret_fails_the_run_by_name() -> None:
    config = fake_agent("env", "X", env={"X": {"secret": "NOPE"}})
    with pytest.raises(RuntimeError_, match="NOPE"):
        await collect(runtime, make_context(config))


async def test_a_missing_executable_is_named() -> None:
    with pytest.raises(RuntimeError_, match="command not found: 'no-such-agent-xyz'"):
        await collect(runtime, make_context({"command": "no-such-agent-xyz"}))


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    config = fake_agent("jsonl", cwd=str(tmp_path / "gone"))
    with pytest.raises(RuntimeError_, match="working directory does not exist"):
        await collect(runtime, make_context(config))


async def test_an_invalid_config_names_the_field() -> None:
    with pytest.raises(RuntimeError_, match=r"runtime_config\.timeout_sec"):
        await collect(runtime, make_context({"command": "python", "timeout_sec": -1}))


async def test_garbage_in_jsonl_fails_and_keeps_earlier_events() -> None:
    events: list[RunEvent] = []
    started = time.monotonic()
    with pytest.raises(
        RuntimeError_, match="stdout line 2 is not a JSON event: 'this is not json'"
    ):
        async for event in runtime.stream(make_context(fake_agent("garbage"))):
            events.append(event)
    assert text_of(events) == "fine so far"
    assert time.monotonic() - started < 3  # the agent (sleeping 5 s) was stopped, not awaited


async def test_an_error_event_fails_with_the_agent_message() -> None:
    with pytest.raises(RuntimeError_, match="the agent reported an error: model overloaded"):
        await collect(runtime, make_context(fake_agent("error_event")))


async def test_a_hang_times_out_and_the_group_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    config = fake_agent("hang", str(pid_file), timeout_sec=0.5, grace_sec=1)
    with pytest.raises(RuntimeError_, match=r"^timed out after 0\.5 s$"):
        await collect(runtime, make_context(config))
    pids = await read_pids(pid_file)
    assert await wait_gone(pids) == []


async def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    config = fake_agent("hang_ignore_term", str(pid_file), timeout_sec=0.5, grace_sec=0.3)
    started = time.monotonic()
    with pytest.raises(RuntimeError_, match="timed out"):
        await collect(runtime, make_context(config))
    assert time.monotonic() - started < 0.5 + 0.3 + 1.5
    assert await wait_gone(await read_pids(pid_file)) == []


async def test_cancel_mid_stream_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    seen: list[RunEvent] = []
    enough = asyncio.Event()

    async def run() -> None:
        async for event in runtime.stream(make_context(fake_agent("ticker", str(pid_file)))):
            seen.append(event)
            if len(seen) >= 3:
                enough.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(enough.wait(), 5)
    pids = await read_pids(pid_file)
    assert all(pid_alive(p) for p in pids)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2  # ticker honours SIGTERM: no grace wait
    assert await wait_gone(pids) == []
    assert text_of(seen).startswith("tick0 ")
