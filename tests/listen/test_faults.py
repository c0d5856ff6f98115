"""Every message is processed exactly once and none is lost, whatever the long connection does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from rudder.db.models import Conversation, InboundEvent
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.listen.support import (
    all_acked,
    assert_exactly_once,
    bound_chat,
    connect_bot,
    fast_sandbox,
    say,
    settled,
)


async def test_connections_dropped_mid_stream(rig: FeishuRig) -> None:
    await fast_sandbox(rig)
    chat = await bound_chat(rig, await connect_bot(rig))
    texts = [f"message {i}" for i in range(12)]
    for i, text in enumerate(texts):
        await say(rig, chat, text)
        if i in (3, 7):
            dropped = await rig.control(
                "POST",
                "/faults",
                json={"kind": "drop_connections", "app_id": chat.bot.app["app_id"]},
            )
            assert dropped["dropped"] >= 1
    deliveries = await all_acked(rig, chat.bot.app["app_id"], len(texts))
    assert any(d["attempts"] > 1 for d in deliveries)  # some pushes hit a dead socket
    await assert_exactly_once(rig, chat, texts)
    async with rig.services.sessions() as session:
        convs = list(
            await session.scalars(select(Conversation).where(Conversation.source == "feishu"))
        )
    assert len(convs) == 1


async def test_lost_acks_are_redelivered_after_15_scaled_seconds_and_deduplicated(
    rig: FeishuRig,
) -> None:
    await fast_sandbox(rig, ack_timeout_s=0.3)
    chat = await bound_chat(rig, await connect_bot(rig))
    await rig.control(
        "POST", "/faults", json={"kind": "lose_acks", "app_id": chat.bot.app["app_id"], "count": 3}
    )
    texts = [f"lost ack {i}" for i in range(5)]
    for text in texts:
        await say(rig, chat, text)
    deliveries = await all_acked(rig, chat.bot.app["app_id"], len(texts))
    repushed = [d for d in deliveries if d["attempts"] == 2]
    assert len(repushed) == 3
    for delivery in repushed:
        first, second = delivery["history"]
        # 0.3 s ack deadline, then the ladder's 15 s × clock factor 0.02.
        assert second["at"] - first["at"] >= 0.3 + 15 * 0.02 - 0.05
    await assert_exactly_once(rig, chat, texts)
    async with rig.services.sessions() as session:
        dups = list(
            await session.scalars(
                select(InboundEvent.reason).where(InboundEvent.outcome == "duplicate")
            )
        )
    assert len(dups) == 3 and all(r and r.startswith("already received") for r in dups)


async def test_late_acks_and_a_connection_lost_before_the_ack(rig: FeishuRig) -> None:
    await fast_sandbox(rig, ack_timeout_s=0.3)
    chat = await bound_chat(rig, await connect_bot(rig))
    app_id = chat.bot.app["app_id"]
    await rig.control(
        "POST", "/faults", json={"kind": "delay_acks", "app_id": app_id, "count": 2, "delay_s": 1}
    )
    texts = [f"late {i}" for i in range(4)]
    for text in texts:
        await say(rig, chat, text)
    await rig.control("POST", "/faults", json={"kind": "drop_connections", "app_id": app_id})
    texts.append("after the drop")
    await say(rig, chat, texts[-1])
    await all_acked(rig, app_id, len(texts))
    await assert_exactly_once(rig, chat, texts)


async def test_duplicate_pushes_by_event_id_and_by_message_id(rig: FeishuRig) -> None:
    chat = await bound_chat(rig, await connect_bot(rig))
    app_id = chat.bot.app["app_id"]
    await say(rig, chat, "only once")
    [delivery] = await all_acked(rig, app_id, 1)
    event = (await rig.control("GET", f"/deliveries?app_id={app_id}&include_event=1"))["items"][0][
        "event"
    ]
    assert delivery["event_id"] == event["header"]["event_id"]
    # The same event pushed again, and the same message under a fresh event_id, concurrently.
    again = {**event, "header": {**event["header"], "event_id": "ev-other-" + "0" * 20}}
    await asyncio.gather(
        rig.control("POST", f"/apps/{app_id}/events", json={"envelope": event}),
        rig.control("POST", f"/apps/{app_id}/events", json={"envelope": event}),
        rig.control("POST", f"/apps/{app_id}/events", json={"envelope": again}),
    )
    await all_acked(rig, app_id, 4)
    await assert_exactly_once(rig, chat, ["only once"])
    async with rig.services.sessions() as session:
        outcomes = sorted(
            await session.scalars(
                select(InboundEvent.outcome).where(
                    InboundEvent.message_id == event["event"]["message"]["message_id"]
                )
            )
        )
    assert outcomes == ["duplicate", "duplicate", "duplicate", "processed"]


async def test_recorded_but_unrouted_events_are_routed_on_restart(rig: FeishuRig) -> None:
    from rudder.feishu.inbound import InboundPipeline

    chat = await bound_chat(rig, await connect_bot(rig))
    fresh = InboundPipeline(rig.services)  # a second process's view of the same database
    await say(rig, chat, "before the crash")
    await all_acked(rig, chat.bot.app["app_id"], 1)
    await settled(rig)
    async with rig.services.sessions() as session, session.begin():
        row = await session.scalar(select(InboundEvent).where(InboundEvent.chat_id == chat.chat_id))
        assert row is not None
        # As if the process died after posting the message, before writing the outcome:
        # routing it again must not post the message a second time.
        row.outcome = "received"
    await fresh.recover()

    async def done() -> bool:
        async with rig.services.sessions() as session:
            outcome = await session.scalar(
                select(InboundEvent.outcome).where(InboundEvent.id == row.id)
            )
        return outcome != "received"

    await wait_for(done)
    await fresh.close()
    await assert_exactly_once(rig, chat, ["before the crash"])
    async with rig.services.sessions() as session:
        reason = await session.scalar(select(InboundEvent.reason).where(InboundEvent.id == row.id))
    assert reason == "message was posted before a restart"


async def test_two_processes_routing_one_event_at_once_post_it_once(
    rig: FeishuRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A takeover while the old holder still runs: both route the same recorded event, and both
    pass the "already posted?" check before either has posted. The database keeps one post (and
    one run); the second router says so instead of failing the event."""
    from rudder import chat as chat_domain
    from rudder.db.models import Message, Run
    from rudder.feishu import routing

    chat = await bound_chat(rig, await connect_bot(rig))
    await say(rig, chat, "routed twice")
    await all_acked(rig, chat.bot.app["app_id"], 1)
    await settled(rig)
    async with rig.services.sessions() as session:
        row = await session.scalar(select(InboundEvent).where(InboundEvent.chat_id == chat.chat_id))
        assert row is not None
    real = chat_domain.posted_message
    checks = 0

    async def not_yet(*args: Any) -> Any:
        nonlocal checks
        checks += 1
        if checks == 1:
            return None  # the check before posting sees nothing, as both routers did in the race
        return await real(*args)

    monkeypatch.setattr(chat_domain, "posted_message", not_yet)
    try:
        # Only its final check (after the refused insert) sees the post.
        outcome = await asyncio.wait_for(routing.route(rig.services, row.id), 30)
    finally:
        monkeypatch.setattr(chat_domain, "posted_message", real)
    assert checks == 2
    assert outcome == (
        "processed",
        "message was already posted by another process; not posted again",
    )
    await settled(rig)
    await assert_exactly_once(rig, chat, ["routed twice"])
    async with rig.services.sessions() as session:
        posts = list(
            await session.scalars(
                select(Message.id).where(Message.external_message_id == row.message_id)
            )
        )
        runs = list(await session.scalars(select(Run.id).where(Run.trigger_message_id.in_(posts))))
    assert len(posts) == 1 and len(runs) == 1
