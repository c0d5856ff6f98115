"""Helpers for Feishu dialogues: people and bots in the sandbox talking to Rudder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from rudder.feishu.inbound import pipeline
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for

BIND_LINK = re.compile(r"/bind/feishu/([\w-]+)")
# The confirmation code: only in the private prompt, never in a group.
BIND_CODE = re.compile(r"enter this code: ([A-Z0-9]{4}-[A-Z0-9]{4})")


@dataclass(frozen=True)
class Prompt:
    link: str  # the code in the link's URL
    confirmation: str  # the code the bind page asks for


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


async def binding_prompts(rig: FeishuRig, chat_id: str) -> list[Prompt]:
    """The binding prompts the bot has sent in the chat, oldest first."""
    found = []
    for text in await bot_texts(rig, chat_id):
        link, code = BIND_LINK.search(text), BIND_CODE.search(text)
        if link:
            assert code, f"a binding prompt without its confirmation code: {text!r}"
            found.append(Prompt(link.group(1), code.group(1)))
    return found


async def prompts(rig: FeishuRig, chat_id: str) -> list[str]:
    """The binding links' codes the bot has sent in the chat, oldest first."""
    return [p.link for p in await binding_prompts(rig, chat_id)]


async def wait_binding(rig: FeishuRig, chat_id: str, nth: int = 1) -> Prompt:
    async def arrived() -> Prompt | None:
        found = await binding_prompts(rig, chat_id)
        return found[nth - 1] if len(found) >= nth else None

    prompt: Prompt = await wait_for(arrived, timeout=10)
    return prompt


async def wait_prompt(rig: FeishuRig, chat_id: str, nth: int = 1) -> str:
    return (await wait_binding(rig, chat_id, nth)).link


async def confirm(
    rig: FeishuRig, prompt: Prompt, code: str | None = None, **kwargs: Any
) -> httpx.Response:
    """Confirm a binding through the API, with the prompt's code unless told otherwise."""
    response: httpx.Response = await rig.client.post(
        f"/api/feishu-bindings/{prompt.link}/confirm",
        json={"confirmation_code": prompt.confirmation if code is None else code},
        **kwargs,
    )
    return response


async def bind(rig: FeishuRig, chat_id: str) -> None:
    """First message → private binding prompt → the member confirms it with its code."""
    prompt = await wait_binding(rig, chat_id)
    page = await rig.client.get(f"/bind/feishu/{prompt.link}")
    assert page.status_code == 200
    ok = await confirm(rig, prompt)
    assert ok.status_code == 200, ok.text
    reused = await confirm(rig, prompt)
    assert reused.status_code == 409  # single use: "already linked"


async def conversations(rig: FeishuRig, org_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await rig.client.get(f"/api/orgs/{org_id}/conversations")).json()
    return rows


async def messages(rig: FeishuRig, conversation_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await rig.client.get(f"/api/conversations/{conversation_id}/messages")
    ).json()
    return rows
