"""`claude_local` with the real Claude Code CLI (2.1.328) against the fake model API: streamed
deltas, resume, changed instructions, per-run usage, stop, a lost session and a bad key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rudder.runtimes.base import ChatMessage, RunContext
from rudder.runtimes.envcheck import DRY_RUN_PROMPT, Level, check_environment
from tests.e2e_cli_runtimes.fake_model import FakeModel, ModelServer
from tests.e2e_cli_runtimes.real_clis import (
    claude_config,
    finish,
    forget_sessions,
    make_agent,
    new_conversation,
    real_cli,
    reply_of,
    run_events,
    say,
)
from tests.runtimes.runtime_helpers import pids_of_run, wait_gone

pytestmark = pytest.mark.timeout(240)
ANSWER = "The build is green and all 42 tests pass."


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # These tests are about the CLI, not the database: SQLite only, to keep them short.
    return f"sqlite+aiosqlite:///{tmp_path / 'rudder.db'}"


@pytest.fixture
def claude() -> str:
    return real_cli("claude")


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with ModelServer(FakeModel(reply=ANSWER, deltas=5, delay=0.4)) as served:
        yield served


async def bodies_while_running(client: httpx.AsyncClient, run_id: str) -> list[str]:
    """Every distinct reply body seen while the run was going (polled), then the final one."""
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = (await client.get(f"/api/runs/{run_id}")).json()
        if run["reply_message_id"]:
            body = (await reply_of(client, run))["body"]
            if body and (not seen or seen[-1] != body):
                seen.append(body)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


async def test_reply_streams_resumes_with_new_instructions_and_bills_per_run(
    client: httpx.AsyncClient, claude: str, model: FakeModel, tmp_path: Path
) -> None:
    # The docs' example fields, as written there.
    config = claude_config(
        claude,
        model,
        tmp_path,
        model="sonnet",
        max_turns=20,
        system_prompt="Work only inside this repository.",
        extra_args=["--permission-mode", "acceptEdits"],
    )
    agent = await make_agent(client, "claude_local", config, instructions="Be brief.")
    conv = await new_conversation(client, agent)

    # 1. The reply arrives in several pieces while the CLI is still running.
    first_id = await say(client, conv, "first question: is the build green?")
    bodies = await bodies_while_running(client, first_id)
    first = await finish(client, first_id)
    assert first["status"] == "succeeded", first["error"]
    assert bodies[-1] == ANSWER
    partial = [b for b in bodies if b != ANSWER]
    assert partial and all(ANSWER.startswith(b) for b in partial), bodies
    (req1,) = model.model_requests("/v1/messages")
    assert "Be brief." in req1.system and "Work only inside this repository." in req1.system
    # Usage is what the model billed for this run's request.
    usage1 = first["usage"]
    assert (usage1["input_tokens"], usage1["output_tokens"]) == (
        req1.input_tokens,
        req1.output_tokens,
    )
    assert usage1["cost_usd"] > 0

    # 2. Changed instructions reach the resumed session, which carries the earlier turn.
    patched = await client.patch(
        f"/api/agents/{agent['id']}", json={"instructions": "Answer in French."}
    )
    assert patched.status_code == 200, patched.text
    second = await finish(client, await say(client, conv, "and the second one?"))
    assert second["status"] == "succeeded", second["error"]
    req1, req2 = model.model_requests("/v1/messages")
    assert "Answer in French." in req2.system and "Be brief." not in req2.system
    assert "first question" in req2.text and ANSWER in req2.text  # resumed, not re-sent
    assert req2.text.count("first question") == 1
    usage2 = second["usage"]
    assert (usage2["input_tokens"], usage2["output_tokens"]) == (
        req2.input_tokens,
        req2.output_tokens,
    )
    # The CLI's total grows over the session; the run stores only its own share.
    assert 0 < usage2["cost_usd"] < 1.5 * usage1["cost_usd"]


async def test_stop_ends_the_cli_and_its_group_and_cancels_the_run(
    client: httpx.AsyncClient, claude: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(reply="slow " * 40, deltas=40, delay=0.5)) as model:
        agent = await make_agent(client, "claude_local", claude_config(claude, model, tmp_path))
        conv = await new_conversation(client, agent)
        run_id = await say(client, conv, "take your time")

        async def streaming() -> bool:
            run = (await client.get(f"/api/runs/{run_id}")).json()
            return bool(run["reply_message_id"] and (await reply_of(client, run))["body"])

        deadline = time.monotonic() + 60
        while not await streaming():
            assert time.monotonic() < deadline, "no text streamed"
            await asyncio.sleep(0.05)
        pids = pids_of_run(run_id)
        assert pids, "the CLI's processes were not found"
        stopped = await client.post(f"/api/conversations/{conv}/stop")
        assert stopped.status_code == 200, stopped.text
        run = await finish(client, run_id)
        assert run["status"] == "cancelled"
        assert await wait_gone(pids, within=10) == []
        assert (await reply_of(client, run))["body"].startswith("slow")


async def test_a_lost_session_starts_fresh_with_the_transcript(
    client: httpx.AsyncClient, claude: str, model: FakeModel, tmp_path: Path
) -> None:
    agent = await make_agent(client, "claude_local", claude_config(claude, model, tmp_path))
    conv = await new_conversation(client, agent)
    first = await finish(client, await say(client, conv, "remember the word pelican"))
    assert first["status"] == "succeeded", first["error"]

    forget_sessions(tmp_path)
    second = await finish(client, await say(client, conv, "which word was it?"))
    assert second["status"] == "succeeded", second["error"]
    assert (await reply_of(client, second))["body"] == ANSWER
    logs = [e["payload"].get("text", "") for e in await run_events(client, second["id"])]
    assert any("no longer knows session" in t for t in logs), logs
    # The fresh session got the conversation so far as a transcript.
    fresh = model.model_requests("/v1/messages")[-1]
    assert "pelican" in fresh.text and "which word was it?" in fresh.text

    # And the conversation now resumes the new session.
    third = await finish(client, await say(client, conv, "thanks"))
    assert third["status"] == "succeeded", third["error"]
    logs = [e["payload"].get("text", "") for e in await run_events(client, third["id"])]
    assert not any("no longer knows session" in t for t in logs)


async def test_a_bad_key_fails_the_run_with_the_reason_and_no_reply(
    client: httpx.AsyncClient, claude: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(status=401)) as model:
        agent = await make_agent(client, "claude_local", claude_config(claude, model, tmp_path))
        conv = await new_conversation(client, agent)
        run = await finish(client, await say(client, conv, "hello?"))
    assert run["status"] == "failed"
    assert "Invalid API key" in run["error"] and "401" in run["error"], run["error"]
    assert (await reply_of(client, run))["body"] == ""
    events = await run_events(client, run["id"])
    assert not [e for e in events if e["kind"] == "text"]


async def test_api_retries_are_logged_not_replied(
    client: httpx.AsyncClient, claude: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(reply=ANSWER, status=529, fail_times=1)) as model:
        agent = await make_agent(client, "claude_local", claude_config(claude, model, tmp_path))
        conv = await new_conversation(client, agent)
        run = await finish(client, await say(client, conv, "hello?"))
    assert run["status"] == "succeeded", run["error"]
    assert (await reply_of(client, run))["body"] == ANSWER
    logs = [e["payload"] for e in await run_events(client, run["id"]) if e["kind"] == "log"]
    assert any(p.get("retry") and "attempt 1/" in p["text"] for p in logs), logs


def _check_ctx(config: dict[str, Any]) -> RunContext:
    async def no_secrets(name: str) -> str:
        raise KeyError(name)

    return RunContext(
        run_id="check-1",
        agent_id="a",
        agent_name="Checker",
        conversation_id="check-1",
        messages=[ChatMessage("user", DRY_RUN_PROMPT)],
        runtime_config=config,
        resolve_secret=no_secrets,
    )


async def test_agent_check_passes_when_it_works_and_names_a_bad_key(
    claude: str, tmp_path: Path
) -> None:
    async def no_secrets(name: str) -> str:
        raise KeyError(name)

    with ModelServer(FakeModel(reply="ok")) as model:
        config = claude_config(claude, model, tmp_path / "good")
        report = await check_environment(
            "claude_local", config, no_secrets, dry_run=_check_ctx(config)
        )
    rows = {c.name: c for c in report.checks}
    assert report.status is Level.PASS, report.as_dict()
    assert rows["version"].message == "2.1.328 (Claude Code)"
    assert rows["login"].message == "uses ANTHROPIC_API_KEY from the environment"
    assert rows["test run"].message.startswith('answered "ok"')

    with ModelServer(FakeModel(status=401)) as model:
        config = claude_config(claude, model, tmp_path / "bad")
        report = await check_environment(
            "claude_local", config, no_secrets, dry_run=_check_ctx(config)
        )
    assert report.status is Level.FAIL
    failed = {c.name: c.message for c in report.checks if c.level is Level.FAIL}
    assert list(failed) == ["test run"] and "Invalid API key" in failed["test run"], failed


async def test_a_stalled_model_stream_trips_the_watchdog(
    client: httpx.AsyncClient, claude: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(stall=True)) as model:
        config = claude_config(claude, model, tmp_path, idle_timeout_sec=4)
        agent = await make_agent(client, "claude_local", config)
        conv = await new_conversation(client, agent)
        run = await finish(client, await say(client, conv, "hello?"))
    assert run["status"] == "failed"
    assert run["error"].startswith("Claude Code made no progress for 4 s"), run["error"]
    assert (await reply_of(client, run))["body"] == ""
