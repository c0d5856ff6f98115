"""Helpers for Feishu dialogues: people and bots in the sandbox talking to Rudder."""

from __future__ import annotations

import re
from typing import Any

from rudder.feishu.inbound import pipeline
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for

BIND_LINK = re.compile(r"/bind/feishu/([\w-]+)")


async def connected_bot(
    rig: FeishuRig, agent: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sandbox app connected (long connection) to `agent`, or to the default agent."""
    if agent is None:
        _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": agent["name"], "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text

    async def live() -> bool:
        state = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()[
            "connection"
        ]
        return bool(state and state["status"] == "connected")

    await wait_for(live, timeout=10)
    return agent, app


async def person(rig: FeishuRig, name: str) -> str:
    user_id: str = (await rig.control("POST", "/users", json={"name": name}))["user_id"]
    return user_id


async def open_id_of(rig: FeishuRig, user_id: str, app: dict[str, Any]) -> str:
    users = (await rig.control("GET", f"/users?app_id={app['app_id']}"))["items"]
    found: str = next(u["open_id"] for u in users if u["user_id"] == user_id)
    return found


async def dm(rig: FeishuRig, user_id: str, app: dict[str, Any]) -> str:
    chat_id: str = (
        await rig.control(
            "POST",
            "/chats",
            json={"type": "p2p", "user_ids": [user_id], "app_ids": [app["app_id"]]},
        )
    )["chat_id"]
    return chat_id


async def group(rig: FeishuRig, name: str, user_ids: list[str], apps: list[dict[str, Any]]) -> str:
    chat_id: str = (
        await rig.control(
            "POST",
            "/chats",
            json={
                "type": "group",
                "name": name,
                "user_ids": user_ids,
                "app_ids": [a["app_id"] for a in apps],
            },
        )
    )["chat_id"]
    return chat_id


async def say(rig: FeishuRig, chat_id: str, user_id: str, text: str = "", **extra: Any) -> str:
    sent = await rig.control(
        "POST", f"/chats/{chat_id}/messages", json={"user_id": user_id, "text": text, **extra}
    )
    message_id: str = sent["message_id"]
    return message_id


async def activity(rig: FeishuRig, agent_id: str, count: int) -> list[dict[str, Any]]:
    """The agent's activity (newest first) once at least `count` events have been routed."""

    async def enough() -> list[dict[str, Any]] | None:
        await pipeline(rig.services).wait_idle()
        rows: list[dict[str, Any]] = (
            await rig.client.get(f"/api/agents/{agent_id}/integrations/feishu/activity")
        ).json()
        done = [r for r in rows if r["outcome"] != "received"]
        return done if len(done) >= count else None

    result: list[dict[str, Any]] = await wait_for(enough, timeout=15)
    return result


async def bot_texts(rig: FeishuRig, chat_id: str) -> list[str]:
    """What the bots said in the chat, oldest first (a streaming card reads as its text)."""
    messages = await rig.control("GET", f"/chats/{chat_id}/messages")
    items = messages.get("items", messages) if isinstance(messages, dict) else messages
    return [m["text"] for m in items if m["sender"]["sender_type"] == "app"]


async def prompts(rig: FeishuRig, chat_id: str) -> list[str]:
    """The binding codes the bot has sent in the chat, oldest first."""
    found = []
    for text in await bot_texts(rig, chat_id):
        match = BIND_LINK.search(text)
        if match:
            found.append(match.group(1))
    return found


async def wait_prompt(rig: FeishuRig, chat_id: str, nth: int = 1) -> str:
    async def arrived() -> str | None:
        codes = await prompts(rig, chat_id)
        return codes[nth - 1] if len(codes) >= nth else None

    code: str = await wait_for(arrived, timeout=10)
    return code


async def bind(rig: FeishuRig, chat_id: str) -> None:
    """First message → binding prompt in the chat → the member confirms the link."""
    code = await wait_prompt(rig, chat_id)
    page = await rig.client.get(f"/bind/feishu/{code}")
    assert page.status_code == 200
    ok = await rig.client.post(f"/api/feishu-bindings/{code}/confirm")
    assert ok.status_code == 200, ok.text
    reused = await rig.client.post(f"/api/feishu-bindings/{code}/confirm")
    assert reused.status_code == 404  # single use


async def conversations(rig: FeishuRig, org_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await rig.client.get(f"/api/orgs/{org_id}/conversations")).json()
    return rows


async def messages(rig: FeishuRig, conversation_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await rig.client.get(f"/api/conversations/{conversation_id}/messages")
    ).json()
    return rows
