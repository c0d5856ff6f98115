"""A Feishu message reaches the agent: long connection → inbox → routing rules → a run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Conversation, InboundEvent
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for, wait_run
from tests.routing.dialogue import activity, bind, bot_texts, connected_bot


async def test_dm_binding_prompt_then_conversation_with_reply(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada = (await rig.control("POST", "/users", json={"name": "Ada"}))["user_id"]
    chat = (
        await rig.control(
            "POST", "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
        )
    )["chat_id"]

    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "hello bot"})
    await bind(rig, chat)
    held = await activity(rig, agent["id"], 1)
    assert held[0]["outcome"] == "held" and held[0]["chat_type"] == "p2p"
    async with rig.services.sessions() as session:
        assert (
            await session.scalar(select(Conversation).where(Conversation.source == "feishu"))
        ) is None

    await rig.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "hello again"}
    )
    rows = await activity(rig, agent["id"], 2)
    assert rows[0]["outcome"] == "processed", rows[0]
    org, _ = await default_org_and_agent(rig.client)
    convs = (await rig.client.get(f"/api/orgs/{org['id']}/conversations")).json()
    feishu = [c for c in convs if c["source"] == "feishu"]
    assert len(feishu) == 1
    conv = feishu[0]
    assert (
        conv["bound"] is True and conv["region"] == "feishu" and conv["external_chat_type"] == "p2p"
    )
    assert conv["agent_id"] == agent["id"]
    messages = (await rig.client.get(f"/api/conversations/{conv['id']}/messages")).json()
    assert messages[0]["body"] == "hello again" and messages[0]["author_user_id"]
    assert (await wait_run(rig.client, messages[0]["run_id"]))["status"] == "succeeded"
    # Read-only locally.
    refused = await rig.client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "x"})
    assert refused.status_code == 409


async def _bound_user_chat(
    rig: FeishuRig, app: dict[str, Any], agent: dict[str, Any], chat_type: str = "p2p"
) -> tuple[str, str]:
    ada = (await rig.control("POST", "/users", json={"name": "Ada"}))["user_id"]
    p2p = (
        await rig.control(
            "POST", "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
        )
    )["chat_id"]
    await rig.control("POST", f"/chats/{p2p}/messages", json={"user_id": ada, "text": "hi"})
    await bind(rig, p2p)
    await activity(rig, agent["id"], 1)
    if chat_type == "p2p":
        return ada, p2p
    group = (
        await rig.control(
            "POST",
            "/chats",
            json={"type": "group", "name": "Team", "user_ids": [ada], "app_ids": [app["app_id"]]},
        )
    )["chat_id"]
    return ada, group


async def test_group_needs_a_mention(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    await rig.control("PATCH", f"/apps/{app['app_id']}", json={"receive_all_group_messages": True})
    ada, group = await _bound_user_chat(rig, app, agent, "group")
    await rig.control(
        "POST", f"/chats/{group}/messages", json={"user_id": ada, "text": "just chatting"}
    )
    await rig.control(
        "POST",
        f"/chats/{group}/messages",
        json={"user_id": ada, "text": "everyone look", "mention_all": True},
    )
    await rig.control(
        "POST",
        f"/chats/{group}/messages",
        json={"user_id": ada, "text": "help me", "mention_app_ids": [app["app_id"]]},
    )
    rows = await activity(rig, agent["id"], 4)
    by_outcome = [r["outcome"] for r in reversed(rows[:3])]
    assert by_outcome == ["ignored", "ignored", "processed"], rows[:3]
    assert "@all" in rows[1]["reason"]
    conv = (await rig.client.get(f"/api/orgs/{agent['org_id']}/conversations")).json()
    group_conv = next(c for c in conv if c["external_chat_type"] == "group")
    messages = (await rig.client.get(f"/api/conversations/{group_conv['id']}/messages")).json()
    assert messages[0]["body"] == "help me"  # the mention placeholder is stripped


async def test_non_text_is_dropped_with_a_notice(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada, chat = await _bound_user_chat(rig, app, agent)
    await rig.control(
        "POST",
        f"/chats/{chat}/messages",
        json={
            "user_id": ada,
            "message_type": "interactive",
            "content": {"schema": "2.0", "body": {"elements": []}},
        },
    )
    rows = await activity(rig, agent["id"], 2)
    assert rows[0]["outcome"] == "dropped" and "interactive" in rows[0]["reason"]
    assert texts.FEISHU_NON_TEXT in await wait_for(lambda: bot_texts(rig, chat))


async def test_new_and_stop_commands(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada, chat = await _bound_user_chat(rig, app, agent)
    await rig.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "slow story please"}
    )
    await activity(rig, agent["id"], 2)

    async def running() -> bool:
        convs = (await rig.client.get(f"/api/orgs/{agent['org_id']}/conversations")).json()
        msgs = (await rig.client.get(f"/api/conversations/{convs[0]['id']}/messages")).json()
        return any(m["role"] == "assistant" and m["status"] == "streaming" for m in msgs)

    await wait_for(running, timeout=10)
    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "/stop"})
    rows = await activity(rig, agent["id"], 3)
    assert rows[0]["outcome"] == "command" and "stopped" in rows[0]["reason"]

    async def stopped_reply() -> bool:
        return texts.FEISHU_STOPPED in await bot_texts(rig, chat)

    await wait_for(stopped_reply)
    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "/stop"})
    rows = await activity(rig, agent["id"], 4)
    assert "nothing" in rows[0]["reason"]

    before = {
        c["id"] for c in (await rig.client.get(f"/api/orgs/{agent['org_id']}/conversations")).json()
    }
    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "/new"})
    rows = await activity(rig, agent["id"], 5)
    assert rows[0]["outcome"] == "command"
    after = (await rig.client.get(f"/api/orgs/{agent['org_id']}/conversations")).json()
    fresh = [c for c in after if c["id"] not in before]
    assert len(fresh) == 1 and fresh[0]["bound"] and fresh[0]["external_chat_id"] == chat
    await rig.control("POST", f"/chats/{chat}/messages", json={"user_id": ada, "text": "after new"})
    await activity(rig, agent["id"], 6)
    msgs = (await rig.client.get(f"/api/conversations/{fresh[0]['id']}/messages")).json()
    assert msgs[0]["body"] == "after new"


async def test_duplicates_and_foreign_events(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    other = await rig.control("POST", "/apps", json={"name": "Other", "brand": "feishu"})
    envelope: dict[str, Any] = {
        "schema": "2.0",
        "header": {
            "event_id": "ev-dup-1",
            "event_type": "im.chat.member.bot.added_v1",
            "app_id": app["app_id"],
            "create_time": "1",
            "token": app["verification_token"],
        },
        "event": {"chat_id": "oc_x"},
    }
    await rig.control("POST", f"/apps/{app['app_id']}/events", json={"envelope": envelope})
    await rig.control("POST", f"/apps/{app['app_id']}/events", json={"envelope": envelope})
    foreign = {
        **envelope,
        "header": {**envelope["header"], "event_id": "ev-foreign", "app_id": other["app_id"]},
    }
    await rig.control("POST", f"/apps/{app['app_id']}/events", json={"envelope": foreign})
    rows = await activity(rig, agent["id"], 3)
    outcomes = sorted(r["outcome"] for r in rows)
    assert outcomes == ["duplicate", "ignored", "refused"], rows
    async with rig.services.sessions() as session:
        count = len(
            list(
                await session.scalars(
                    select(InboundEvent).where(InboundEvent.event_id == "ev-dup-1")
                )
            )
        )
    assert count == 1
