"""Many bots in one process, each hearing only its own events; the inbox's group commit."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from rudder.db.models import InboundEvent
from rudder.feishu.events import parse_event
from rudder.feishu.inbound import Received, pipeline
from tests.conftest import FeishuRig
from tests.listen.support import (
    all_acked,
    assert_exactly_once,
    bound_chat,
    connect_bot,
    say,
    settled,
)


async def test_many_bots_each_receive_only_their_own_events(rig: FeishuRig) -> None:
    bots = [await connect_bot(rig, f"Bot {i}", new_agent=True) for i in range(3)]
    chats = [await bound_chat(rig, bot, f"User {i}") for i, bot in enumerate(bots)]
    texts = {c.chat_id: [f"{c.bot.app['app_id']} #{n}" for n in range(4)] for c in chats}
    await asyncio.gather(*(say(rig, c, t) for c in chats for t in texts[c.chat_id]))
    for chat in chats:
        await all_acked(rig, chat.bot.app["app_id"], 4)
    await settled(rig)
    async with rig.services.sessions() as session:
        rows = (
            await session.execute(
                select(InboundEvent.integration_id, InboundEvent.app_id, InboundEvent.chat_id)
            )
        ).all()
    owner = {c.bot.integration_id: (c.bot.app["app_id"], c.chat_id) for c in chats}
    assert len(rows) == 12
    for integration_id, app_id, chat_id in rows:
        assert owner[integration_id] == (app_id, chat_id)
    for chat in chats:
        convs = (await rig.client.get(f"/api/orgs/{chat.bot.org_id}/conversations")).json()
        [conv] = [c for c in convs if c["agent_id"] == chat.bot.agent_id]
        messages = (await rig.client.get(f"/api/conversations/{conv['id']}/messages")).json()
        bodies = sorted(m["body"] for m in messages if m["role"] == "user")
        assert bodies == sorted(texts[chat.chat_id])


async def test_an_event_of_another_app_is_refused_and_does_not_shadow_it(rig: FeishuRig) -> None:
    mine = await connect_bot(rig, "Mine", new_agent=True)
    other = await connect_bot(rig, "Other", new_agent=True)
    envelope = {
        "schema": "2.0",
        "header": {
            "event_id": "ev-" + "f" * 29,
            "event_type": "im.chat.member.bot.added_v1",
            "app_id": other.app["app_id"],
            "create_time": "1",
            "token": other.app["verification_token"],
        },
        "event": {"chat_id": "oc_x"},
    }
    # Pushed on my bot's connection though it names the other app.
    await rig.control("POST", f"/apps/{mine.app['app_id']}/events", json={"envelope": envelope})
    await all_acked(rig, mine.app["app_id"], 1)  # acked: refused, not re-pushed forever
    # The same event, rightly delivered to its own app, is not taken for a duplicate.
    await rig.control("POST", f"/apps/{other.app['app_id']}/events", json={"envelope": envelope})
    await all_acked(rig, other.app["app_id"], 1)
    await settled(rig)
    async with rig.services.sessions() as session:
        rows = (
            await session.execute(
                select(InboundEvent.integration_id, InboundEvent.outcome, InboundEvent.reason)
            )
        ).all()
    by_bot = {integration_id: (outcome, reason) for integration_id, outcome, reason in rows}
    assert len(rows) == 2
    assert by_bot[mine.integration_id][0] == "refused"
    assert other.app["app_id"] in (by_bot[mine.integration_id][1] or "")
    assert by_bot[other.integration_id][0] == "ignored"


def _event(app_id: str, event_id: str, message_id: str, text: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {"event_id": event_id, "event_type": "im.message.receive_v1", "app_id": app_id},
        "event": {
            "sender": {"sender_id": {"open_id": "ou_nobody"}, "sender_type": "user"},
            "message": {
                "message_id": message_id,
                "chat_id": "oc_batch",
                "chat_type": "group",
                "message_type": "text",
                "content": f'{{"text": "{text}"}}',
            },
        },
    }


async def test_concurrent_events_share_transactions_and_duplicates_are_found_inside_one(
    rig: FeishuRig,
) -> None:
    bot = await connect_bot(rig)
    inbox = pipeline(rig.services)
    before = inbox.writer.batches
    app_id = bot.app["app_id"]
    events = [_event(app_id, f"ev-{i:04d}", f"om_{i:04d}", f"n{i}") for i in range(60)]
    events.append(events[5])  # the same event twice in one batch
    events.append(_event(app_id, "ev-again", "om_0007", "n7"))  # a known message, new event_id
    results = await asyncio.gather(
        *(inbox.receive(bot.integration_id, parse_event(e)) for e in events)
    )
    assert inbox.writer.batches - before < len(events) / 2  # several per transaction
    assert [r.duplicate for r in results].count(True) == 2
    assert results[-2].duplicate and results[-1].duplicate and not results[5].duplicate
    await settled(rig)
    async with rig.services.sessions() as session:
        outcomes = list(await session.scalars(select(InboundEvent.outcome)))
    assert sorted(set(outcomes)) == ["duplicate", "ignored"]
    assert outcomes.count("duplicate") == 2 and len(outcomes) == 62


async def test_bound_chat_through_the_batching_inbox(rig: FeishuRig) -> None:
    chat = await bound_chat(rig, await connect_bot(rig))
    texts = [f"burst {i}" for i in range(10)]
    await asyncio.gather(*(say(rig, chat, t) for t in texts))
    await all_acked(rig, chat.bot.app["app_id"], len(texts))
    await assert_exactly_once(rig, chat, texts)


async def test_one_bad_event_in_a_batch_fails_only_itself(rig: FeishuRig) -> None:
    bot = await connect_bot(rig)
    inbox = pipeline(rig.services)
    # On an on-disk SQLite database the batch runs on the writer thread (inbox_sqlite.py).
    assert (inbox.writer._sqlite is not None) == (rig.services.engine.dialect.name == "sqlite")
    app_id = bot.app["app_id"]
    good = [parse_event(_event(app_id, f"ok-{i}", f"om_ok_{i}", f"g{i}")) for i in range(8)]
    bad = parse_event(_event(app_id, "bad-1", "om_bad_1", "b"))
    results = await asyncio.gather(
        *(inbox.receive(bot.integration_id, e) for e in good),
        inbox.receive("no-such-integration", bad),
        return_exceptions=True,
    )
    assert isinstance(results[-1], LookupError)
    assert all(isinstance(r, Received) and not r.duplicate for r in results[:-1])
    again = await inbox.receive(bot.integration_id, good[3])
    assert again.duplicate
    await settled(rig)
    async with rig.services.sessions() as session:
        outcomes = list(await session.scalars(select(InboundEvent.outcome)))
    assert sorted(outcomes) == ["duplicate"] + ["ignored"] * 8
