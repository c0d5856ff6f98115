"""Local CLI runtimes driven through the run executor: session memory per conversation, stop and
timeout, usage on the run, stderr in the transcript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from rudder.db.models import Conversation
from rudder.services import Services
from tests.helpers import default_org_and_agent, wait_run

from .runtime_helpers import install_fake_clis, read_calls, read_pids, wait_gone

HELLO_SESSION = "5d4c9a1e-3f2b-4c8e-9a7d-1b2c3d4e5f60"


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_fake_clis(tmp_path / "bin", monkeypatch)
    return tmp_path / "calls.jsonl"


async def make_agent(
    client: httpx.AsyncClient, runtime_type: str, env: dict[str, str], **config: Any
) -> dict[str, Any]:
    org, _ = await default_org_and_agent(client)
    created = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={
            "name": f"Coder {runtime_type}",
            "runtime_type": runtime_type,
            "runtime_config": {"env": env, **config},
        },
    )
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    return agent


async def new_conversation(client: httpx.AsyncClient, agent: dict[str, Any]) -> str:
    created = await client.post(
        f"/api/orgs/{agent['org_id']}/conversations", json={"agent_id": agent["id"]}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def say(client: httpx.AsyncClient, conversation_id: str, body: str) -> str:
    posted = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"body": body}
    )
    assert posted.status_code == 201, posted.text
    return str(posted.json()["run_id"])


def resumed(call: dict[str, Any], flag: str = "--resume") -> str | None:
    argv: list[str] = call["argv"]
    return argv[argv.index(flag) + 1] if flag in argv else None


async def reply_of(client: httpx.AsyncClient, run: dict[str, Any]) -> dict[str, Any]:
    messages = (await client.get(f"/api/conversations/{run['conversation_id']}/messages")).json()
    found: dict[str, Any] = next(m for m in messages if m["id"] == run["reply_message_id"])
    return found


async def test_memory_per_conversation_usage_and_stderr(
    client: httpx.AsyncClient, record: Path
) -> None:
    env = {
        "FAKE_CLI_FIXTURE": "claude_local__hello",
        "FAKE_CLI_RECORD": str(record),
        "FAKE_CLI_STDERR": "warming up the model cache",
    }
    agent = await make_agent(client, "claude_local", env)
    first = await new_conversation(client, agent)

    run = await wait_run(client, await say(client, first, "first question"))
    assert run["status"] == "succeeded", run["error"]
    # A new conversation has no session yet: the CLI starts fresh.
    assert resumed(read_calls(record)[0]) is None
    usage = run["usage"]
    assert usage["cost_usd"] == 0.0127 and usage["input_tokens"] == 4
    assert usage["output_tokens"] == 11 and usage["cached_input_tokens"] == 12013
    events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    logs = [e["payload"] for e in events if e["kind"] == "log"]
    assert {"text": "warming up the model cache", "stream": "stderr"} in logs
    reply = await reply_of(client, run)
    assert reply["body"] == "Hello Ada! The build is green."  # stderr stays out of the reply

    run = await wait_run(client, await say(client, first, "second question"))
    assert run["status"] == "succeeded"
    second_call = read_calls(record)[1]
    assert resumed(second_call) == HELLO_SESSION
    assert second_call["stdin"] == "second question"  # the session already holds the rest

    other = await new_conversation(client, agent)
    run = await wait_run(client, await say(client, other, "unrelated"))
    assert run["status"] == "succeeded"
    assert resumed(read_calls(record)[2]) is None

    fork = await client.post(f"/api/conversations/{first}/fork", json={})
    assert fork.status_code == 201, fork.text
    run = await wait_run(client, await say(client, fork.json()["id"], "in the fork"))
    assert run["status"] == "succeeded"
    forked_call = read_calls(record)[3]
    assert resumed(forked_call) is None  # a fork starts its own session, with the history
    assert "first question" in forked_call["stdin"] and "in the fork" in forked_call["stdin"]


async def test_a_session_the_cli_forgot_is_retried_fresh(
    app: FastAPI, client: httpx.AsyncClient, record: Path
) -> None:
    env = {"FAKE_CLI_FIXTURE": "codex_local__hello", "FAKE_CLI_RECORD": str(record)}
    agent = await make_agent(client, "codex_local", env)
    conv = await new_conversation(client, agent)
    services: Services = app.state.services
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(Conversation).where(Conversation.id == conv).values(runtime_session_id="stale-7")
        )
    run = await wait_run(client, await say(client, conv, "still there?"))
    assert run["status"] == "succeeded", run["error"]
    first, second = read_calls(record)
    assert resumed(first, "resume") == "stale-7" and resumed(second, "resume") is None
    async with services.sessions() as session:
        stored = await session.get(Conversation, conv)
        assert stored is not None and stored.runtime_session_id not in (None, "stale-7")


async def test_stop_ends_the_cli_group_and_keeps_the_partial_text(
    client: httpx.AsyncClient, record: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pids"
    env = {
        "FAKE_CLI_FIXTURE": "claude_local__tools",
        "FAKE_CLI_RECORD": str(record),
        "FAKE_CLI_HANG": str(pid_file),
    }
    agent = await make_agent(client, "claude_local", env, grace_sec=1)
    conv = await new_conversation(client, agent)
    run_id = await say(client, conv, "list the files")
    pids = await read_pids(pid_file)  # every line printed; the CLI and its helper now hang
    assert len(pids) == 2
    stopped = await client.post(f"/api/runs/{run_id}/cancel")
    assert stopped.status_code == 200, stopped.text
    run = await wait_run(client, run_id)
    assert run["status"] == "cancelled" and run["error"] is None
    assert await wait_gone(pids) == []
    reply = await reply_of(client, run)
    assert reply["status"] == "stopped"
    assert reply["body"] == "Let me look.\n\nThere are two entries: README.md and src."


async def test_a_timeout_ends_the_cli_group_and_keeps_the_partial_text(
    client: httpx.AsyncClient, record: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pids"
    env = {
        "FAKE_CLI_FIXTURE": "claude_local__tools",
        "FAKE_CLI_RECORD": str(record),
        "FAKE_CLI_HANG": str(pid_file),
    }
    agent = await make_agent(client, "claude_local", env, timeout_sec=1.5, grace_sec=0.5)
    conv = await new_conversation(client, agent)
    run_id = await say(client, conv, "list the files")
    pids = await read_pids(pid_file)
    run = await wait_run(client, run_id)
    # A timeout stops the run like /stop (issue 12): cancelled, the reason kept on the run.
    assert run["status"] == "cancelled" and run["error"] == "timed out after 1.5 s"
    assert await wait_gone(pids) == []
    reply = await reply_of(client, run)
    assert reply["body"].endswith("There are two entries: README.md and src.")
