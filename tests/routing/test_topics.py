"""Topics as conversations: each topic of a group is a Rudder conversation of its own, its
replies stay in it, and /stop and /new act on it alone. In a normal group a quoted reply is not
a new session, and a reply to the bot's own message addresses it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Conversation, Run
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.buttons import Team, button, press, team
from tests.routing.dialogue import activity, conversations, messages, say


async def _topic_group(rig: FeishuRig, t: Team) -> str:
    chat: str = (
        await rig.control(
            "POST",
            "/chats",
            json={
                "type": "group",
                "chat_mode": "topic",
                "name": "Topics",
                "user_ids": [t.ada, t.bob],
                "app_ids": [t.app["app_id"]],
            },
        )
    )["chat_id"]
    return chat


async def _post(rig: FeishuRig, chat: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
    posted: dict[str, Any] = await rig.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": text, **extra}
    )
    return posted


async def _items(rig: FeishuRig, chat: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await rig.control("GET", f"/chats/{chat}/messages"))["items"]
    return items


async def _wait_text(rig: FeishuRig, chat: str, text: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((m for m in await _items(rig, chat) if m["text"] == text), None)

    message: dict[str, Any] = await wait_for(found, timeout=10)
    return message


async def _runs(rig: FeishuRig) -> list[Run]:
    async with rig.services.sessions() as session:
        return list(await session.scalars(select(Run).order_by(Run.created_at)))


async def _convs(rig: FeishuRig, chat: str) -> list[Conversation]:
    async with rig.services.sessions() as session:
        return list(
            await session.scalars(
                select(Conversation)
                .where(Conversation.external_chat_id == chat)
                .order_by(Conversation.created_at)
            )
        )


async def test_two_topics_run_at_once_without_mixing(rig: FeishuRig) -> None:
    t = await team(rig, delay_ms=25)
    chat = await _topic_group(rig, t)
    mention = {"mention_app_ids": [t.app["app_id"]]}
    first = await _post(rig, chat, t.ada, "count to 40", **mention)
    second = await _post(rig, chat, t.bob, "count to 45", **mention)
    assert first["thread_id"] and second["thread_id"] and first["thread_id"] != second["thread_id"]

    async def both_done() -> list[Run] | None:
        runs = await _runs(rig)
        finished = [r for r in runs if r.status == "succeeded"]
        return runs if len(finished) == 2 else None

    a, b = await wait_for(both_done, timeout=30)
    # They ran side by side: each started before the other ended.
    assert a.started_at and b.started_at and a.finished_at and b.finished_at
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    convs = await _convs(rig, chat)
    assert len(convs) == 2 and {c.external_thread_id for c in convs} == {
        first["thread_id"],
        second["thread_id"],
    }
    listed = await conversations(rig, t.org_id)
    assert {c["external_thread_id"] for c in listed if c["external_chat_id"] == chat} == {
        first["thread_id"],
        second["thread_id"],
    }
    page = await rig.client.get(f"/messenger/{convs[0].id}")
    assert page.status_code == 200 and "· topic" in page.text
    # Messenger names each topic after its first message.
    assert sorted(c.title for c in convs) == ["count to 40 · Counter", "count to 45 · Counter"]
    for topic, n in ((first, "40"), (second, "45")):
        conv = next(c for c in convs if c.external_thread_id == topic["thread_id"])
        bodies = [m["body"] for m in await messages(rig, conv.id)]
        assert bodies[0] == f"count to {n}" and f"Counting to {n}:" in bodies[1]
        assert not any(f"Counting to {'45' if n == '40' else '40'}" in b for b in bodies)

    async def replied() -> list[dict[str, Any]] | None:
        bots = [m for m in await _items(rig, chat) if m["sender"]["sender_type"] == "app"]
        return bots if len(bots) == 2 and not any(m["streaming"] for m in bots) else None

    bots = await wait_for(replied, timeout=15)
    # Nothing of a topic appears in the main chat: every bot message is inside its topic.
    by_topic = {m["thread_id"]: m for m in bots}
    assert set(by_topic) == {first["thread_id"], second["thread_id"]}
    assert "Counting to 40:" in by_topic[first["thread_id"]]["text"]
    assert "Counting to 45:" in by_topic[second["thread_id"]]["text"]


async def test_stop_and_new_act_on_the_topic_alone(rig: FeishuRig) -> None:
    t = await team(rig, delay_ms=40)
    chat = await _topic_group(rig, t)
    mention = {"mention_app_ids": [t.app["app_id"]]}
    one = await _post(rig, chat, t.ada, "count to 400", **mention)
    two = await _post(rig, chat, t.ada, "count to 400", **mention)

    async def both_running() -> list[Run] | None:
        runs = await _runs(rig)
        return runs if len([r for r in runs if r.status == "running"]) == 2 else None

    await wait_for(both_running, timeout=15)
    await _post(rig, chat, t.ada, "/stop", thread_id=one["thread_id"], **mention)

    async def one_stopped() -> list[Run] | None:
        runs = await _runs(rig)
        return runs if any(r.status == "cancelled" for r in runs) else None

    runs = await wait_for(one_stopped, timeout=15)
    convs = {c.id: c for c in await _convs(rig, chat)}
    stopped = next(r for r in runs if r.status == "cancelled")
    going = next(r for r in runs if r.id != stopped.id)
    assert convs[stopped.conversation_id].external_thread_id == one["thread_id"]
    assert going.status == "running"
    # The answer to /stop is in the topic too.
    notice = await _wait_text(rig, chat, texts.FEISHU_STOPPED)
    assert notice["thread_id"] == one["thread_id"]

    # /new in the first topic starts a fresh conversation for that topic only.
    await _post(rig, chat, t.ada, "/new", thread_id=one["thread_id"], **mention)

    async def fresh() -> list[Conversation] | None:
        found = await _convs(rig, chat)
        return found if len(found) == 3 else None

    after = await wait_for(fresh, timeout=10)
    assert [c.external_thread_id for c in after].count(one["thread_id"]) == 2
    assert [c.external_thread_id for c in after].count(two["thread_id"]) == 1
    new_notice = await _wait_text(rig, chat, texts.FEISHU_NEW_STARTED)
    assert new_notice["thread_id"] == one["thread_id"]

    # The second topic's card: stopped from Rudder, then New conversation pressed on it.
    await rig.client.post(f"/api/runs/{going.id}/cancel")

    async def card_in_two() -> dict[str, Any] | None:
        for m in await _items(rig, chat):
            if m["thread_id"] == two["thread_id"] and button(m, texts.CARD_BUTTON_NEW):
                return m
        return None

    card = await wait_for(card_in_two, timeout=15)
    new = button(card, texts.CARD_BUTTON_NEW)
    assert new is not None
    pressed = await press(rig, card["message_id"], t.ada, new)
    assert pressed["toast"]["content"] == texts.CARD_TOAST_NEW_STARTED

    async def four() -> list[Conversation] | None:
        found = await _convs(rig, chat)
        return found if len(found) == 4 else None

    last = await wait_for(four, timeout=10)
    assert [c.external_thread_id for c in last].count(two["thread_id"]) == 2


async def test_quoted_reply_is_the_same_session_and_reply_to_bot_is_a_mention(
    rig: FeishuRig,
) -> None:
    t = await team(rig)
    # The bot receives every group message (scope im:message.group_msg): without it Feishu
    # pushes only @-mentions, and a reply to the bot never reaches Rudder.
    await rig.control(
        "PATCH", f"/apps/{t.app['app_id']}", json={"receive_all_group_messages": True}
    )
    chat: str = (
        await rig.control(
            "POST",
            "/chats",
            json={
                "type": "group",
                "name": "Plain",
                "user_ids": [t.ada, t.bob],
                "app_ids": [t.app["app_id"]],
            },
        )
    )["chat_id"]
    asked = await say(rig, chat, t.ada, "hello there", mention_app_ids=[t.app["app_id"]])

    async def reply() -> dict[str, Any] | None:
        bots = [m for m in await _items(rig, chat) if m["sender"]["sender_type"] == "app"]
        return bots[0] if bots and not bots[0]["streaming"] else None

    card = await wait_for(reply, timeout=15)
    assert card["parent_id"] == asked and card["thread_id"] is None
    # A reply to the bot's card, without any @-mention: for the bot, in the same conversation.
    await say(rig, chat, t.ada, "tell me more", reply_to=card["message_id"])
    # A quote of someone else's message without a mention, and @all: not for the bot.
    await say(rig, chat, t.bob, "me too", reply_to=asked)
    await say(rig, chat, t.bob, "everyone look", mention_all=True)
    rows = await activity(rig, t.agent["id"], 4)
    outcomes = [(r["outcome"], r["reason"]) for r in reversed(rows)][-3:]
    assert outcomes[0][0] == "processed"
    assert outcomes[1] == ("ignored", "group message does not mention this bot")
    assert outcomes[2] == (
        "ignored",
        "group message does not mention this bot (@all is not a mention)",
    )
    convs = await _convs(rig, chat)
    assert len(convs) == 1 and convs[0].external_thread_id is None
    bodies = [m["body"] for m in await messages(rig, convs[0].id) if m["role"] == "user"]
    assert bodies == ["hello there", "tell me more"]


async def test_a_topic_joined_later_is_named_after_its_first_message(rig: FeishuRig) -> None:
    t = await team(rig)
    chat = await _topic_group(rig, t)
    # The topic starts without the bot (Feishu does not push it), which is asked inside it.
    root = await _post(rig, chat, t.ada, "Plan for the Friday release")
    await _post(
        rig,
        chat,
        t.bob,
        "what do you think?",
        thread_id=root["thread_id"],
        mention_app_ids=[t.app["app_id"]],
    )

    async def bound() -> list[Conversation] | None:
        found = await _convs(rig, chat)
        return found or None

    [conv] = await wait_for(bound, timeout=10)
    assert conv.external_thread_id == root["thread_id"]
    assert conv.title == "Plan for the Friday release · Counter"
