"""A connected bot with a bound Feishu user, and the exactly-once checks the listen tests share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from rudder.db.models import InboundEvent, Message
from rudder.feishu.inbound import pipeline
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from tests.conftest import FeishuRig
from tests.helpers import wait_for


@dataclass
class Bot:
    agent_id: str
    org_id: str
    integration_id: str
    app: dict[str, Any]


@dataclass
class BoundChat:
    bot: Bot
    user_id: str  # the sandbox user
    chat_id: str


async def fast_sandbox(rig: FeishuRig, *, ack_timeout_s: float = 0.4) -> None:
    """Feishu's timings, scaled: re-push after 15 s × 0.02, reconnect without the 2-s nonce."""
    await rig.control(
        "PATCH",
        "/settings",
        json={"ack_timeout_s": ack_timeout_s, "ws_reconnect_nonce": 0, "ws_reconnect_interval": 1},
    )
    await rig.control("POST", "/clock", json={"factor": 0.02})


async def connect_bot(rig: FeishuRig, name: str = "Bot", *, new_agent: bool = False) -> Bot:
    org = (await rig.client.get("/api/orgs")).json()[0]
    if new_agent:
        runtime, config = DEFAULT_AGENT_RUNTIME
        r = await rig.client.post(
            f"/api/orgs/{org['id']}/agents",
            json={"name": name, "runtime_type": runtime, "runtime_config": config},
        )
        assert r.status_code == 201, r.text
        agent = r.json()
    else:
        agent = (await rig.client.get(f"/api/orgs/{org['id']}/agents")).json()[0]
    app = await rig.control("POST", "/apps", json={"name": name, "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text
    integration_id = r.json()["id"]

    async def live() -> bool:
        view = await rig.control("GET", f"/apps/{app['app_id']}")
        return bool(view["connections"])

    await wait_for(live, timeout=10)
    return Bot(agent["id"], org["id"], integration_id, app)


async def bound_chat(rig: FeishuRig, bot: Bot, name: str = "Ada") -> BoundChat:
    """A p2p chat whose Feishu user is bound to the local member, so messages become runs."""
    user = (await rig.control("POST", "/users", json={"name": name}))["user_id"]
    chat = (
        await rig.control(
            "POST",
            "/chats",
            json={"type": "p2p", "user_ids": [user], "app_ids": [bot.app["app_id"]]},
        )
    )["chat_id"]
    users = (await rig.control("GET", f"/users?app_id={bot.app['app_id']}"))["items"]
    open_id = next(u["open_id"] for u in users if u["user_id"] == user)
    member = (await rig.client.get(f"/api/orgs/{bot.org_id}/members")).json()[0]
    r = await rig.client.post(
        f"/api/orgs/{bot.org_id}/feishu-user-bindings",
        json={
            "integration_id": bot.integration_id,
            "open_id": open_id,
            "user_id": member["user_id"],
        },
    )
    assert r.status_code == 200, r.text
    return BoundChat(bot, user, chat)


async def say(rig: FeishuRig, chat: BoundChat, text: str) -> str:
    posted = await rig.control(
        "POST", f"/chats/{chat.chat_id}/messages", json={"user_id": chat.user_id, "text": text}
    )
    return str(posted["message_id"])


async def all_acked(rig: FeishuRig, app_id: str, expected: int, timeout: float = 15) -> list[Any]:
    async def done() -> list[Any] | None:
        items = (await rig.control("GET", f"/deliveries?app_id={app_id}"))["items"]
        acked = [d for d in items if d["acked"]]
        return items if len(acked) >= expected and len(acked) == len(items) else None

    result: list[Any] = await wait_for(done, timeout=timeout)
    return result


async def settled(rig: FeishuRig) -> None:
    async def idle() -> bool:
        await pipeline(rig.services).wait_idle()
        async with rig.services.sessions() as session:
            left = await session.scalar(
                select(func.count()).where(InboundEvent.outcome == "received")
            )
        return not left

    await wait_for(idle, timeout=15)


async def assert_exactly_once(rig: FeishuRig, chat: BoundChat, texts: list[str]) -> None:
    """Every text is one user message in the chat's conversation, and one inbox row is original."""
    await settled(rig)
    async with rig.services.sessions() as session:
        bodies = list(
            await session.scalars(
                select(Message.body).where(Message.role == "user").order_by(Message.created_at)
            )
        )
        rows = (
            await session.execute(
                select(InboundEvent.message_id, InboundEvent.outcome).where(
                    InboundEvent.chat_id == chat.chat_id
                )
            )
        ).all()
    assert sorted(bodies) == sorted(texts), bodies
    originals: dict[str, list[str]] = {}
    for message_id, outcome in rows:
        if outcome != "duplicate":
            originals.setdefault(message_id or "", []).append(outcome)
    assert len(originals) == len(texts)
    assert all(outcomes == ["processed"] for outcomes in originals.values()), originals
