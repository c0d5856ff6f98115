"""The product document's "Verify the connection" walk, end to end against the sandbox.

DM the bot → binding prompt → bind → resend → a Feishu-badged conversation and the agent's reply
in the chat → /new → a new conversation → /stop during a slow reply → the run is cancelled →
a local post to the bound conversation gets 409 → Fork → a local message in the fork is answered.
"""

from __future__ import annotations

import pytest

from rudder import texts
from tests.conftest import FeishuRig
from tests.helpers import wait_for, wait_run
from tests.routing.dialogue import (
    activity,
    bind,
    bot_texts,
    connected_bot,
    conversations,
    dm,
    messages,
    person,
    prompts,
    say,
)


async def test_verify_the_connection(rig: FeishuRig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slow enough that /stop lands mid-reply (the example agent writes ~150 words for "slow").
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", "20")
    agent, app = await connected_bot(rig)
    org_id = agent["org_id"]
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)

    # Ada DMs the bot and is asked to link her account first; nothing reaches the agent.
    await say(rig, chat, ada, "hello bot")
    await bind(rig, chat)
    assert [r["outcome"] for r in await activity(rig, agent["id"], 1)] == ["held"]
    assert not [c for c in await conversations(rig, org_id) if c["source"] == "feishu"]

    # She sends it again: a Feishu conversation appears and the reply lands in her chat.
    await say(rig, chat, ada, "hello bot")
    assert (await activity(rig, agent["id"], 2))[0]["outcome"] == "processed"
    feishu = [c for c in await conversations(rig, org_id) if c["source"] == "feishu"]
    assert len(feishu) == 1
    first = feishu[0]
    assert first["bound"] and first["region"] == "feishu"
    assert first["external_chat_type"] == "p2p" and first["external_chat_id"] == chat
    assert first["external_chat_name"] and first["agent_id"] == agent["id"]
    user_message = (await messages(rig, first["id"]))[0]
    assert user_message["body"] == "hello bot" and user_message["author_user_id"]
    assert (await wait_run(rig.client, user_message["run_id"]))["status"] == "succeeded"
    reply = next(m for m in await messages(rig, first["id"]) if m["role"] == "assistant")

    async def reply_in_chat() -> bool:
        said = await bot_texts(rig, chat)
        return any(reply["body"].strip() in t for t in said)

    await wait_for(reply_in_chat, timeout=15)

    # /new: a fresh conversation for the same chat, and the chat is told so.
    await say(rig, chat, ada, "/new")
    rows = await activity(rig, agent["id"], 3)
    assert rows[0]["outcome"] == "command" and "/new" in rows[0]["reason"]
    fresh = [
        c
        for c in await conversations(rig, org_id)
        if c["source"] == "feishu" and c["id"] != first["id"]
    ]
    assert len(fresh) == 1 and fresh[0]["bound"] and fresh[0]["external_chat_id"] == chat
    await wait_for(lambda: _said(rig, chat, texts.FEISHU_NEW_STARTED))

    # A slow reply, and /stop while it is being written.
    await say(rig, chat, ada, "tell me a slow story")
    await activity(rig, agent["id"], 4)
    asked = (await messages(rig, fresh[0]["id"]))[0]
    assert asked["body"] == "tell me a slow story"

    async def streaming() -> bool:
        return any(
            m["role"] == "assistant" and m["status"] == "streaming"
            for m in await messages(rig, fresh[0]["id"])
        )

    await wait_for(streaming, timeout=10)
    await say(rig, chat, ada, "/stop")
    rows = await activity(rig, agent["id"], 5)
    assert rows[0]["outcome"] == "command" and "stopped the reply" in rows[0]["reason"]
    assert (await wait_run(rig.client, asked["run_id"]))["status"] == "cancelled"
    await wait_for(lambda: _said(rig, chat, texts.FEISHU_STOPPED))

    # The bound conversation is read-only here.
    refused = await rig.client.post(
        f"/api/conversations/{fresh[0]['id']}/messages", json={"body": "from Rudder"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "conversation_bound" and refused.json()["detail"]

    # Fork it, and carry on locally.
    forked = await rig.client.post(f"/api/conversations/{fresh[0]['id']}/fork")
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert not fork["bound"] and fork["forked_from_conversation_id"] == fresh[0]["id"]
    assert fork["forked_from_message_id"]
    copied = await messages(rig, fork["id"])
    assert copied[0]["body"] == "tell me a slow story"
    posted = await rig.client.post(
        f"/api/conversations/{fork['id']}/messages", json={"body": "continue here"}
    )
    assert posted.status_code == 201, posted.text
    assert (await wait_run(rig.client, posted.json()["run_id"]))["status"] == "succeeded"
    answer = [m for m in await messages(rig, fork["id"]) if m["role"] == "assistant"][-1]
    assert answer["status"] == "completed" and answer["body"]
    # The fork's conversation never reaches Feishu: no new prompts or messages in the chat.
    assert len(await prompts(rig, chat)) == 1


async def _said(rig: FeishuRig, chat: str, text: str) -> bool:
    return text in await bot_texts(rig, chat)
