from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rudder.runtimes import DEFAULT_AGENT_RUNTIME, get_runtime
from rudder.runtimes.base import RunEvent, RunEventKind, RuntimeError_
from rudder.runtimes.example_agent import FAIL_REASON, SWITCH_HINT

from .runtime_helpers import collect, make_context, pids_of_run, text_of, wait_gone


def default_config(delay_ms: int) -> dict[str, Any]:
    runtime_type, config = DEFAULT_AGENT_RUNTIME
    assert runtime_type == "process"
    return {**config, "env": {"RUDDER_EXAMPLE_DELAY_MS": str(delay_ms)}}


async def test_the_default_agent_answers_offline_and_streams() -> None:
    ctx = make_context(default_config(1), "Where are the docs?")
    events = await collect(get_runtime("process"), ctx)
    reply = text_of(events)
    assert len(events) > 5  # word by word, not one block
    assert reply.startswith("Hi Ada! I'm Rudder's example agent")
    assert '"Where are the docs?" (4 words, 19 characters)' in reply
    assert "message 2 from you" in reply
    assert SWITCH_HINT in reply
    # Deterministic: the same context gives the same reply.
    assert text_of(await collect(get_runtime("process"), ctx)) == reply


async def test_count_to_n_gives_a_long_reply() -> None:
    reply = text_of(
        await collect(get_runtime("process"), make_context(default_config(0), "count to 12"))
    )
    assert "Counting to 12: 1 2 3 4 5 6 7 8 9 10 11 12. Done counting." in reply


async def test_fail_exits_non_zero_with_its_reason() -> None:
    with pytest.raises(RuntimeError_) as failure:
        await collect(get_runtime("process"), make_context(default_config(0), "please fail"))
    assert str(failure.value) == f"the agent process exited with code 3: {FAIL_REASON}"


async def test_stop_mid_stream_ends_the_agent_and_keeps_the_partial_text() -> None:
    ctx = make_context(default_config(20), "slow please", run_id="run-example-stop")
    seen: list[RunEvent] = []
    enough = asyncio.Event()

    async def run() -> None:
        async for event in get_runtime("process").stream(ctx):
            seen.append(event)
            if len(seen) >= 5:
                enough.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(enough.wait(), 5)
    pids = pids_of_run("run-example-stop")
    assert pids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(pids) == []
    assert pids_of_run("run-example-stop") == []
    partial = text_of(seen)
    assert partial.startswith("Hi Ada!") and "Done counting" not in partial
    assert {e.kind for e in seen} == {RunEventKind.TEXT}
