"""Faults: rate limits, 5xx, expired tokens, recalled messages, crashes, size, the last attempt."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, OutboxItem
from rudder.feishu import outbox
from rudder.feishu import reply_calls as calls
from rudder.feishu.chunking import CARD_BUDGET
from rudder.feishu.outbound import send_notice
from tests.helpers import DONE, card_body, card_buttons, card_footer
from tests.outbound.conftest import Bot


async def test_rate_limits_and_5xx_are_retried_into_exactly_one_reply(bot: Bot) -> None:
    await bot.fault("im.message.reply", 230020, count=2)
    await bot.fault("cardkit.card.create", 99991400, count=2, http_status=429)
    await bot.fault("cardkit.card.update", 1, count=1, http_status=503)
    run_id, _ = await bot.ask(text="still arrives once", pieces=3, delay=0.02)
    await bot.wait_done(run_id)
    replies = await bot.bot_messages()
    assert [(r["text"], r["streaming"]) for r in replies] == [("still arrives once" + DONE, False)]
    codes = [c.code for c in bot.calls]
    assert codes.count(230020) >= 2 and codes.count(99991400) == 2


async def test_plain_text_rate_limit_storm(bot: Bot) -> None:
    await bot.set_style("plain_text")
    await bot.fault("im.message.reply", 230020, count=4)
    run_id, _ = await bot.ask(text="after the storm")
    await bot.wait_done(run_id)
    assert [r["text"] for r in await bot.bot_messages()] == ["after the storm"]


async def test_expired_tokens_are_refreshed(bot: Bot) -> None:
    first, _ = await bot.ask(text="before")
    await bot.wait_done(first)
    await bot.rig.control("POST", "/tokens/expire", json={"app_id": bot.app["app_id"]})
    second, _ = await bot.ask(text="after expiry")
    await bot.wait_done(second)
    assert [r["text"] for r in await bot.bot_messages()] == ["before" + DONE, "after expiry" + DONE]
    assert 99991663 in [c.code for c in bot.calls]


async def test_recalled_message_falls_back_to_a_send(bot: Bot) -> None:
    await bot.set_style("plain_text")
    await bot.fault("im.message.reply", 230011)
    run_id, _ = await bot.ask(text="said in the chat instead")
    await bot.wait_done(run_id)
    [reply] = await bot.bot_messages()
    assert reply["text"] == "said in the chat instead" and not reply["parent_id"]


async def test_the_same_outbox_row_sent_twice_posts_once(bot: Bot) -> None:
    """A crash after Feishu accepted a send but before the row said so: the retry is a no-op."""
    await bot.set_style("plain_text")
    run_id, _ = await bot.ask(text="exactly once")
    await bot.wait_done(run_id)
    async with bot.rig.services.sessions() as session, session.begin():
        row = await session.scalar(
            select(OutboxItem).where(OutboxItem.run_id == run_id, OutboxItem.kind == calls.TEXT)
        )
        assert row is not None and row.status == "sent"
        first_id = row.feishu_message_id
        row.status = "pending"  # as if the process died before recording the answer
        ledger = await session.scalar(
            select(OutboxItem).where(OutboxItem.run_id == run_id, OutboxItem.kind == calls.RUN)
        )
        assert ledger is not None
        ledger.status = "pending"
    item = await outbox.get(bot.rig.services.sessions, row.idempotency_uuid)
    assert item is not None
    again = await bot.ob.deliver(item)
    assert again.status == "sent" and again.feishu_message_id == first_id
    assert [r["text"] for r in await bot.bot_messages()] == ["exactly once"]


async def test_restart_mid_reply_resumes_without_duplicates(bot: Bot) -> None:
    """The reply ledger left pending (a crash mid-reply) is finished by the next start."""
    run_id, _ = await bot.ask(text="resumed " * 5)
    await bot.wait_done(run_id)
    async with bot.rig.services.sessions() as session, session.begin():
        rows = list(await session.scalars(select(OutboxItem).where(OutboxItem.run_id == run_id)))
        for row in rows:
            if row.kind in (calls.RUN, calls.CARD_FINAL, calls.TYPING_OFF):
                row.status = "pending"
    await bot.ob.close()
    fresh = type(bot.ob)(bot.rig.services)
    fresh.policy.base_s = 0.02
    fresh.start()
    await fresh.wait_idle(10)
    await fresh.close()
    [reply] = await bot.bot_messages()
    assert reply["text"] == "resumed " * 5 + DONE and reply["streaming"] is False


async def test_a_typing_indicator_added_just_before_a_crash_is_removed_after_the_resume(
    bot: Bot,
) -> None:
    """The process died after Feishu added "Typing" to the user's message but before the row
    said so: the resumed reply reuses that reaction instead of adding a second one, and the
    message ends with none."""
    run_id, user_message = await bot.ask(text="typing once")
    await bot.wait_done(run_id)
    async with bot.rig.services.sessions() as session, session.begin():
        rows = {
            r.kind: r
            for r in await session.scalars(select(OutboxItem).where(OutboxItem.run_id == run_id))
        }
        typing, ledger = rows[calls.TYPING], rows[calls.RUN]
        typing.status, typing.payload, ledger.status = "pending", {}, "pending"
        await session.delete(rows[calls.TYPING_OFF])  # the reply never got that far
        integration_id = typing.integration_id
    client = await bot.ob.bot(integration_id)
    await client.add_reaction(user_message, calls.TYPING_EMOJI)  # the attempt that was lost
    await bot.ob.close()
    fresh = type(bot.ob)(bot.rig.services)
    fresh.policy.base_s = 0.02
    fresh.shared_horizon_s = 0.0  # PostgreSQL: the run ended long enough ago
    fresh.start()
    await fresh.wait_idle(10)
    await fresh.close()
    items = (await bot.rig.control("GET", f"/chats/{bot.chat_id}/messages"))["items"]
    mine = next(m for m in items if m["message_id"] == user_message)
    assert [r["emoji_type"] for r in mine["reactions"]] == []
    [reply] = await bot.bot_messages()
    assert reply["text"] == "typing once" + DONE


async def test_forty_kilobytes_arrive_complete_across_cards(bot: Bot) -> None:
    paragraph = "Lorem ipsum dolor sit amet, 长文本 consectetur adipiscing elit.\n\n"
    text = paragraph * (40 * 1024 // len(paragraph.encode()) + 1)
    assert len(text.encode()) > 40 * 1024
    run_id, _ = await bot.ask(text=text, pieces=40, delay=0.01)
    await bot.wait_done(run_id, timeout=30)
    replies = await bot.bot_messages()
    assert len(replies) == 2
    assert "".join(card_body(r) for r in replies) == text
    assert all(len(r["text"].encode()) <= CARD_BUDGET for r in replies)
    # Only the last card has the footer and New conversation; none keeps Stop.
    assert [card_buttons(r) for r in replies] == [[], [texts.CARD_BUTTON_NEW]]
    assert card_footer(replies[-1]) == texts.CARD_FOOTER_DONE and card_footer(replies[0]) is None
    assert replies[0]["text"].endswith("\n\n")  # cut at a paragraph boundary
    assert all(r["streaming"] is False for r in replies)


async def test_failure_after_the_last_attempt_is_visible(bot: Bot) -> None:
    await bot.set_style("plain_text")
    bot.ob.policy.max_attempts = 3
    await bot.fault("im.message.reply", 230020, count=10)
    run_id, _ = await bot.ask(text="never arrives")
    await bot.wait_done(run_id)
    assert await bot.bot_messages() == []
    _, message = await bot.stored(run_id)
    assert message.status == "failed" and message.error and "230020" in message.error
    async with bot.rig.services.sessions() as session:
        logged = await session.scalar(
            select(ActivityLog).where(
                ActivityLog.action == "feishu.reply_failed", ActivityLog.entity_id == run_id
            )
        )
    assert logged is not None


async def test_card_failure_falls_back_to_text(bot: Bot) -> None:
    await bot.fault("cardkit.card.create", 230099, count=5)
    run_id, _ = await bot.ask(text="| a | b |\n|---|---|\n| 1 | 2 |")
    await bot.wait_done(run_id)
    [reply] = await bot.bot_messages()
    assert reply["msg_type"] == "text" and reply["text"] == "| a | b |\n|---|---|\n| 1 | 2 |"


async def test_notice_is_idempotent_by_key(bot: Bot) -> None:
    for _ in range(2):
        await send_notice(
            bot.rig.services, bot.integration_id, bot.chat_id, "hello", reply_to=None, key="k1"
        )
    assert [r["text"] for r in await bot.bot_messages()] == ["hello"]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_process_starting_on_postgresql_leaves_live_replies_to_their_drivers(
    bot: Bot,
) -> None:
    """Several processes share the database: a reply still pending whose run is going (or
    ended a moment ago) belongs to the process executing it. A process starting meanwhile
    must not drive it too (two typing reactions, two card entities, a card left streaming)."""
    run_id, _ = await bot.ask(text="mine alone", pieces=2, delay=0.01)
    await bot.wait_done(run_id)
    async with bot.rig.services.sessions() as session, session.begin():
        ledger = await session.scalar(
            select(OutboxItem).where(OutboxItem.run_id == run_id, OutboxItem.kind == calls.RUN)
        )
        assert ledger is not None
        ledger.status = "pending"  # as seen while its driver is still finishing it
    fresh = type(bot.ob)(bot.rig.services)
    assert await fresh.sweep(older_than_s=0.0) == 0  # ended a moment ago: not taken
    fresh.shared_horizon_s = 0.0  # once its driver is evidently gone, it is taken up
    assert await fresh.sweep(older_than_s=0.0) == 1
    await fresh.wait_idle(10)
    await fresh.close()
