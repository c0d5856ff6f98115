"""An agent on `claude_local` talking through Feishu in the sandbox: with a fake `claude` on PATH,
streamed card text, session resume per chat, `/new`, `/stop` ending the CLI's process group; with
the real Claude Code CLI against the fake model API, text streaming into the card."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rudder import texts
from tests.conftest import FeishuRig
from tests.e2e_cli_runtimes.fake_model import FakeModel, ModelServer
from tests.e2e_cli_runtimes.real_clis import claude_config, real_cli
from tests.helpers import DONE, default_org_and_agent, wait_for, wait_run
from tests.runtimes.runtime_helpers import install_fake_clis, read_calls, read_pids, wait_gone

TOOLS_SESSION = "9e8d7c6b-5a49-4382-a716-0f1e2d3c4b5a"
ANSWER = "Let me look.\n\nThere are two entries: README.md and src."


async def connect_coder(
    rig: FeishuRig, env: dict[str, str], config: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str, str]:
    """A `claude_local` agent with a connected bot and a bound Feishu user: (agent, user, chat)."""
    org, _ = await default_org_and_agent(rig.client)
    created = await rig.client.post(
        f"/api/orgs/{org['id']}/agents",
        json={
            "name": "Coder",
            "runtime_type": "claude_local",
            "runtime_config": config or {"env": env, "grace_sec": 1},
        },
    )
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    app = await rig.control("POST", "/apps", json={"name": "Coder", "brand": "feishu"})
    connected = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert connected.status_code == 200, connected.text

    async def live() -> bool:
        info = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
        return bool(info["connection"] and info["connection"]["status"] == "connected")

    await wait_for(live, timeout=10)
    user = (await rig.control("POST", "/users", json={"name": "Ada"}))["user_id"]
    chat = (
        await rig.control(
            "POST", "/chats", json={"type": "p2p", "user_ids": [user], "app_ids": [app["app_id"]]}
        )
    )["chat_id"]
    # The first message of an unknown sender gets a binding prompt; the member confirms it.
    await say(rig, user, chat, "hi")
    prompt = await wait_for(lambda: bot_texts(rig, chat), timeout=10)
    code = re.search(r"/bind/feishu/([\w-]+)", prompt[0])
    confirmation = re.search(r"enter this code: (\S+)", prompt[0])
    assert code and confirmation, prompt
    confirmed = await rig.client.post(
        f"/api/feishu-bindings/{code.group(1)}/confirm",
        json={"confirmation_code": confirmation.group(1)},
    )
    assert confirmed.status_code == 200, confirmed.text
    return agent, user, chat


async def say(rig: FeishuRig, user: str, chat: str, text: str) -> None:
    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": user, "text": text})


async def bot_messages(rig: FeishuRig, chat: str) -> list[dict[str, Any]]:
    items = (await rig.control("GET", f"/chats/{chat}/messages"))["items"]
    return [m for m in items if m["sender"]["sender_type"] == "app"]


async def bot_texts(rig: FeishuRig, chat: str) -> list[str]:
    return [m["text"] for m in await bot_messages(rig, chat)]


async def cards(rig: FeishuRig, chat: str) -> list[dict[str, Any]]:
    return [m for m in await bot_messages(rig, chat) if m["msg_type"] == "interactive"]


async def finished_card(rig: FeishuRig, chat: str, index: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        found = await cards(rig, chat)
        return found[index] if len(found) > index and not found[index]["streaming"] else None

    card: dict[str, Any] = await wait_for(done, timeout=15)
    return card


async def feishu_runs(rig: FeishuRig, agent: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of the agent's Feishu conversations, oldest first."""
    convs = (await rig.client.get(f"/api/orgs/{agent['org_id']}/conversations")).json()
    runs = []
    for conv in convs:
        if conv["agent_id"] != agent["id"]:
            continue
        for m in (await rig.client.get(f"/api/conversations/{conv['id']}/messages")).json():
            if m["role"] == "user" and m["run_id"]:
                runs.append(await wait_run(rig.client, m["run_id"]))
    return sorted(runs, key=lambda r: r["created_at"])


def resumed(call: dict[str, Any]) -> str | None:
    argv: list[str] = call["argv"]
    return argv[argv.index("--resume") + 1] if "--resume" in argv else None


async def test_claude_code_agent_in_a_feishu_dm(
    rig: FeishuRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_clis(tmp_path / "bin", monkeypatch)
    record, pid_file = tmp_path / "calls.jsonl", tmp_path / "cli.pids"
    env = {
        "FAKE_CLI_FIXTURE": "claude_local__tools",
        "FAKE_CLI_RECORD": str(record),
        "FAKE_CLI_DELAY_MS": "150",  # the two text blocks arrive apart: the card streams
        "FAKE_CLI_HANG": str(pid_file),
        "FAKE_CLI_HANG_IF": "take your time",
    }
    agent, user, chat = await connect_coder(rig, env)

    # 1. A DM reaches the agent; its text streams into the card; thinking and tools stay out.
    await say(rig, user, chat, "what files are here?")

    async def partial() -> bool:
        found = await cards(rig, chat)
        return bool(found and found[0]["streaming"] and found[0]["text"].startswith("Let me look."))

    await wait_for(partial, timeout=15, interval=0.01)
    card = await finished_card(rig, chat, 0)
    assert card["text"] == ANSWER + DONE
    (run,) = await feishu_runs(rig, agent)
    assert run["status"] == "succeeded" and run["usage"]["cost_usd"] == 0.0311
    messages = (
        await rig.client.get(f"/api/conversations/{run['conversation_id']}/messages")
    ).json()
    assert next(m for m in messages if m["id"] == run["reply_message_id"])["body"] == ANSWER
    assert resumed(read_calls(record)[0]) is None
    events = {e["kind"] for e in (await rig.client.get(f"/api/runs/{run['id']}/events")).json()}
    assert {"thinking", "tool_call", "tool_result"} <= events  # kept in the transcript

    # 2. The next message in the same chat resumes the CLI session.
    await say(rig, user, chat, "and the tests?")
    assert (await finished_card(rig, chat, 1))["text"] == ANSWER + DONE
    second = read_calls(record)[1]
    assert resumed(second) == TOOLS_SESSION and second["stdin"] == "and the tests?"

    # 3. /new starts a fresh conversation, so a fresh CLI session.
    await say(rig, user, chat, "/new")
    await wait_for(lambda: _has_text(rig, chat, texts.FEISHU_NEW_STARTED))
    await say(rig, user, chat, "start over")
    await finished_card(rig, chat, 2)
    fresh = read_calls(record)[2]
    assert resumed(fresh) is None and fresh["stdin"] == "start over"

    # 4. /stop ends the CLI and the helper it started; the card says "Stopped".
    await say(rig, user, chat, "take your time")
    pids = await read_pids(pid_file, within=15)
    await say(rig, user, chat, "/stop")
    stopped = await finished_card(rig, chat, 3)
    assert await wait_gone(pids) == []
    assert stopped["text"].startswith(ANSWER) and stopped["text"].endswith(texts.REPLY_STOPPED)
    assert (await feishu_runs(rig, agent))[-1]["status"] == "cancelled"


async def _has_text(rig: FeishuRig, chat: str, text: str) -> bool:
    return text in await bot_texts(rig, chat)


REAL_ANSWER = "Streaming into the card, piece by piece, from the real Claude Code CLI."


async def test_real_claude_code_streams_into_a_feishu_card(
    rig: FeishuRig, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if "postgres" in request.node.name:
        pytest.skip("the real CLI's streaming does not depend on the database; SQLite covers it")
    claude = real_cli("claude")
    with ModelServer(FakeModel(reply=REAL_ANSWER, deltas=6, delay=0.5)) as model:
        agent, user, chat = await connect_coder(
            rig, {}, claude_config(claude, model, tmp_path / "home")
        )
        await say(rig, user, chat, "stream something")
        partials: list[str] = []

        async def finished() -> bool:
            found = await cards(rig, chat)
            if not found:
                return False
            card = found[0]
            if card["streaming"] and card["text"] and card["text"] not in partials:
                partials.append(card["text"])
            return not card["streaming"]

        await wait_for(finished, timeout=90, interval=0.05)
        card = (await cards(rig, chat))[0]
    assert card["text"] == REAL_ANSWER + DONE
    # The card showed the reply growing while the CLI was still answering.
    shown = [p for p in partials if p != REAL_ANSWER]
    assert len(shown) >= 2 and all(REAL_ANSWER.startswith(p) for p in shown), partials
    (run,) = await feishu_runs(rig, agent)
    assert run["status"] == "succeeded", run["error"]
