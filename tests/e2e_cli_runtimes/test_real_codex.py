"""`codex_local` with the real Codex CLI (0.169.0) against the fake model API (a custom provider
in $CODEX_HOME/config.toml): reply, resume, per-run usage, stop, a lost session, a bad key, an
unreachable provider, stderr backtraces, and agent check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rudder.runtimes.envcheck import Level, check_environment
from tests.e2e_cli_runtimes.fake_model import FakeModel, ModelServer
from tests.e2e_cli_runtimes.real_clis import (
    codex_config,
    finish,
    forget_sessions,
    make_agent,
    new_conversation,
    real_cli,
    reply_of,
    run_events,
    say,
)
from tests.e2e_cli_runtimes.test_real_claude import _check_ctx
from tests.runtimes.runtime_helpers import pids_of_run, wait_gone

pytestmark = pytest.mark.timeout(240)
ANSWER = "Two files changed; the tests pass."
# The docs' example `extra_args` for Codex: it must work as written.
DOCS_EXTRA_ARGS = ["--sandbox", "workspace-write"]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'rudder.db'}"


@pytest.fixture
def codex() -> str:
    return real_cli("codex")


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with ModelServer(FakeModel(reply=ANSWER, deltas=4, delay=0.1)) as served:
        yield served


async def test_reply_resume_and_per_run_usage(
    client: httpx.AsyncClient, codex: str, model: FakeModel, tmp_path: Path
) -> None:
    config = codex_config(codex, model, tmp_path, extra_args=DOCS_EXTRA_ARGS)
    agent = await make_agent(client, "codex_local", config, instructions="Be brief.")
    conv = await new_conversation(client, agent)

    first = await finish(client, await say(client, conv, "first question: what changed?"))
    assert first["status"] == "succeeded", first["error"]
    assert (await reply_of(client, first))["body"] == ANSWER
    (req1,) = model.model_requests("/v1/responses")
    assert req1.headers.get("authorization") == "Bearer sk-fake-test-key"
    assert "Be brief." in req1.text  # a fresh session gets the instructions before the prompt
    usage1 = first["usage"]
    assert (usage1["input_tokens"], usage1["output_tokens"]) == (
        req1.input_tokens,
        req1.output_tokens,
    )

    # Codex keeps a session's first instructions; changed ones are said in the next prompt.
    patched = await client.patch(
        f"/api/agents/{agent['id']}", json={"instructions": "Answer in French."}
    )
    assert patched.status_code == 200, patched.text
    second = await finish(client, await say(client, conv, "and then?"))
    assert second["status"] == "succeeded", second["error"]
    req1, req2 = model.model_requests("/v1/responses")
    assert "first question" in req2.text and ANSWER in req2.text  # the thread was resumed
    assert "Answer in French." in req2.text
    # Codex reports the thread's running totals; the run stores what this request billed.
    usage2 = second["usage"]
    assert (usage2["input_tokens"], usage2["output_tokens"]) == (
        req2.input_tokens,
        req2.output_tokens,
    )
    # Codex's own warnings on stderr are log lines of the transcript, never the reply.
    assert (await reply_of(client, second))["body"] == ANSWER


async def test_stop_ends_the_cli_and_cancels_the_run(
    client: httpx.AsyncClient, codex: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(reply="slow " * 20, deltas=20, delay=1.0)) as model:
        agent = await make_agent(client, "codex_local", codex_config(codex, model, tmp_path))
        conv = await new_conversation(client, agent)
        run_id = await say(client, conv, "take your time")
        deadline = time.monotonic() + 60
        while not model.model_requests("/v1/responses"):
            assert time.monotonic() < deadline, "Codex never asked the model"
            await asyncio.sleep(0.05)
        pids = pids_of_run(run_id)
        assert pids, "the CLI's processes were not found"
        stopped = await client.post(f"/api/conversations/{conv}/stop")
        assert stopped.status_code == 200, stopped.text
        run = await finish(client, run_id)
    assert run["status"] == "cancelled"
    assert await wait_gone(pids, within=10) == []


async def test_a_lost_session_starts_fresh_without_a_backtrace(
    client: httpx.AsyncClient, codex: str, model: FakeModel, tmp_path: Path
) -> None:
    agent = await make_agent(client, "codex_local", codex_config(codex, model, tmp_path))
    conv = await new_conversation(client, agent)
    first = await finish(client, await say(client, conv, "remember the word pelican"))
    assert first["status"] == "succeeded", first["error"]

    forget_sessions(tmp_path)
    second = await finish(client, await say(client, conv, "which word was it?"))
    assert second["status"] == "succeeded", second["error"]
    logs = [e["payload"].get("text", "") for e in await run_events(client, second["id"])]
    assert any("no longer knows session" in t for t in logs), logs
    assert any("no rollout found" in t for t in logs), logs  # Codex's own words are kept
    assert not any("backtrace" in t.lower() or t.strip().startswith("0:") for t in logs), logs
    fresh = model.model_requests("/v1/responses")[-1]
    assert "pelican" in fresh.text and "which word was it?" in fresh.text
    assert fresh.input_tokens == second["usage"]["input_tokens"]


async def test_a_bad_key_fails_the_run_with_the_reason_and_no_reply(
    client: httpx.AsyncClient, codex: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel(status=401)) as model:
        agent = await make_agent(client, "codex_local", codex_config(codex, model, tmp_path))
        conv = await new_conversation(client, agent)
        run = await finish(client, await say(client, conv, "hello?"))
    assert run["status"] == "failed"
    assert "401 Unauthorized" in run["error"], run["error"]
    assert (await reply_of(client, run))["body"] == ""
    events = await run_events(client, run["id"])
    assert not [e for e in events if e["kind"] == "text"]
    assert any("Reconnecting" in e["payload"].get("text", "") for e in events)


async def test_an_unreachable_provider_trips_the_watchdog(
    client: httpx.AsyncClient, codex: str, tmp_path: Path
) -> None:
    with ModelServer(FakeModel()) as model:
        config = codex_config(codex, model, tmp_path, idle_timeout_sec=4)
    # The server is gone: Codex would say "Reconnecting… waiting for network" until timeout_sec.
    agent = await make_agent(client, "codex_local", config)
    conv = await new_conversation(client, agent)
    started = time.monotonic()
    run = await finish(client, await say(client, conv, "hello?"))
    assert run["status"] == "failed"
    assert "made no progress for 4 s" in run["error"], run["error"]
    assert "Reconnecting" in run["error"]
    assert time.monotonic() - started < 60


async def test_agent_check_passes_with_a_custom_provider_and_names_a_missing_key(
    codex: str, tmp_path: Path
) -> None:
    async def no_secrets(name: str) -> str:
        raise KeyError(name)

    with ModelServer(FakeModel(reply="ok")) as model:
        config = codex_config(codex, model, tmp_path / "good")
        report = await check_environment(
            "codex_local", config, no_secrets, dry_run=_check_ctx(config)
        )
        rows = {c.name: c for c in report.checks}
        assert report.status is Level.PASS, report.as_dict()
        assert rows["version"].message == "codex-cli 0.169.0"
        assert rows["login"].message == "provider 'fake' uses FAKE_MODEL_KEY"
        assert rows["test run"].message.startswith('answered "ok"')

        # The provider's key is missing: the login row says which variable.
        config = codex_config(codex, model, tmp_path / "bad")
        del config["env"]["FAKE_MODEL_KEY"]
        report = await check_environment(
            "codex_local", config, no_secrets, dry_run=_check_ctx(config)
        )
    rows = {c.name: c for c in report.checks}
    assert report.status is Level.FAIL
    assert rows["login"].level is Level.FAIL and "FAKE_MODEL_KEY" in rows["login"].message
    assert rows["test run"].level is Level.SKIP


async def test_agent_check_refuses_openai_api_key_alone(codex: str, tmp_path: Path) -> None:
    async def no_secrets(name: str) -> str:
        raise KeyError(name)

    home = tmp_path / "home"
    home.mkdir()
    config = {
        "command": codex,
        "env": {"HOME": str(home), "CODEX_HOME": str(home), "OPENAI_API_KEY": "sk-x"},
    }
    report = await check_environment("codex_local", config, no_secrets)
    rows = {c.name: c for c in report.checks}
    assert rows["version"].message == "codex-cli 0.169.0"
    assert rows["login"].level is Level.FAIL
    assert "CODEX_API_KEY" in (rows["login"].hint or ""), rows["login"]
