"""The agent's outbound work: POST /api/agents/{id}/integrations/feishu/messages."""

from __future__ import annotations

from sqlalchemy import select

from rudder.api import routes_feishu_messages
from rudder.db.models import Message
from rudder.domain import auth
from tests.outbound.conftest import Bot


def _route(bot: Bot) -> None:
    app = bot.rig.app
    if not any(getattr(r, "path", "").endswith("/feishu/messages") for r in app.routes):
        app.include_router(routes_feishu_messages.router)


async def test_agent_posts_into_its_bound_chat(bot: Bot) -> None:
    _route(bot)
    url = f"/api/agents/{bot.agent_id}/integrations/feishu/messages"
    r = await bot.rig.client.post(
        url, json={"chat_id": bot.chat_id, "text": "Daily report: all green"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "sent" and len(body["feishu_message_ids"]) == 1
    assert body["conversation_id"] == bot.conversation_id
    [posted] = await bot.bot_messages()
    assert posted["text"] == "Daily report: all green" and not posted["parent_id"]
    assert posted["message_id"] == body["feishu_message_ids"][0]
    async with bot.rig.services.sessions() as session:
        stored = await session.get(Message, body["message_id"])
        assert stored is not None and stored.role == "assistant"
        assert stored.external_message_id == posted["message_id"]

    # By conversation, with an idempotency key: the second request posts nothing new.
    for _ in range(2):
        again = await bot.rig.client.post(
            url,
            json={"conversation_id": bot.conversation_id, "text": "once", "idempotency_key": "r1"},
        )
        assert again.status_code == 200, again.text
    assert [m["text"] for m in await bot.bot_messages()] == ["Daily report: all green", "once"]
    async with bot.rig.services.sessions() as session:
        count = len(list(await session.scalars(select(Message).where(Message.body == "once"))))
    assert count == 1


async def test_other_chats_agents_and_tokens_get_404(bot: Bot) -> None:
    _route(bot)
    url = f"/api/agents/{bot.agent_id}/integrations/feishu/messages"
    other_app = await bot.rig.control("POST", "/apps", json={"name": "Other", "brand": "feishu"})
    foreign = await bot.rig.control(
        "POST",
        "/chats",
        json={"type": "group", "user_ids": [bot.user_id], "app_ids": [other_app["app_id"]]},
    )
    r = await bot.rig.client.post(url, json={"chat_id": foreign["chat_id"], "text": "hi"})
    assert r.status_code == 404, r.text

    org_id = (await bot.rig.client.get(f"/api/agents/{bot.agent_id}")).json()["org_id"]
    second = await bot.rig.client.post(
        f"/api/orgs/{org_id}/agents",
        json={
            "name": "Other agent",
            "runtime_type": "http",
            "runtime_config": {"url": "http://agent.example:9/"},
        },
    )
    async with bot.rig.services.sessions() as session, session.begin():
        _, own = await auth.issue_token(session, org_id=org_id, name="own", agent_id=bot.agent_id)
        _, other = await auth.issue_token(
            session, org_id=org_id, name="other", agent_id=second.json()["id"]
        )
    ok = await bot.rig.client.post(
        url,
        json={"chat_id": bot.chat_id, "text": "with my token"},
        headers={"Authorization": f"Bearer {own}"},
    )
    assert ok.status_code == 200, ok.text
    denied = await bot.rig.client.post(
        url,
        json={"chat_id": bot.chat_id, "text": "nope"},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert denied.status_code == 404, denied.text
    bad = await bot.rig.client.post(url, json={"text": "no target"})
    assert bad.status_code == 422
