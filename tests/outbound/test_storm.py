"""A storm: 30 messages from several users and chats to one bot while Feishu misbehaves.

Rate limits (tight per-chat and per-API limits plus injected 230020 / 99991400), 5xx bursts,
tokens expired while cards stream, and responses lost after Feishu committed the send (the
request reaches the sandbox, then the client sees a dropped connection; the retry carries the same
`uuid`). Every message must get exactly one card reply whose final text is Rudder's stored answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from rudder.db.models import Conversation
from rudder.feishu.chunking import CARD_BUDGET
from tests.helpers import DONE, card_body
from tests.outbound.conftest import Bot

MESSAGES = 30
EXTRA_USERS = ("Bo", "Cy", "Di")


async def _chat(bot: Bot, kind: str, user_ids: list[str], name: str) -> tuple[str, str]:
    """A sandbox chat with the bot, and its bound Rudder conversation: (chat id, conversation id)."""
    chat = await bot.rig.control(
        "POST",
        "/chats",
        json={"type": kind, "user_ids": user_ids, "app_ids": [bot.app["app_id"]], "name": name},
    )
    async with bot.rig.services.sessions() as session, session.begin():
        first = await session.get(Conversation, bot.conversation_id)
        assert first is not None
        conv = Conversation(
            org_id=first.org_id,
            agent_id=bot.agent_id,
            title=name,
            source="feishu",
            integration_id=bot.integration_id,
            region="feishu",
            external_chat_id=chat["chat_id"],
            external_chat_type=kind,
            bound=True,
        )
        session.add(conv)
        await session.flush()
        return str(chat["chat_id"]), str(conv.id)


def _drop_responses_after_commit(bot: Bot, path_suffix: str, count: int) -> list[str]:
    """The next `count` successful answers to `path_suffix` are lost on the way back: Feishu did
    the work, Rudder sees a broken connection. Returns the paths whose answers were dropped."""
    dropped: list[str] = []

    async def on_response(response: httpx.Response) -> None:
        path = response.request.url.path
        if len(dropped) >= count or not path.endswith(path_suffix):
            return
        await response.aread()
        if response.status_code == 200 and response.json().get("code") == 0:
            dropped.append(path)
            raise httpx.ReadError("connection dropped after the send", request=response.request)

    bot.rig.services.http.event_hooks["response"].append(on_response)
    return dropped


async def test_thirty_messages_through_a_fault_storm_are_answered_exactly_once(bot: Bot) -> None:
    started = time.monotonic()
    # Retries that never give up within the storm: the schedule is tested elsewhere.
    bot.ob.policy.max_attempts = 30
    bot.ob.policy.max_s = 0.5
    app_id = bot.app["app_id"]

    # Several users, p2p and group chats, one bot.
    users = [bot.user_id] + [
        (await bot.rig.control("POST", "/users", json={"name": n}))["user_id"] for n in EXTRA_USERS
    ]
    chats = [(bot.chat_id, bot.conversation_id, bot.user_id)]
    for n, user in enumerate(users[1:], 1):
        chats.append((*await _chat(bot, "p2p", [user], f"DM {n}"), user))
    group_chat, group = await _chat(bot, "group", users, "Storm group")
    chats += [(group_chat, group, users[0]), (group_chat, group, users[2])]

    # The storm: tight limits, injected rate limits and 5xx, lost answers.
    await bot.rig.control(
        "PATCH",
        "/settings",
        json={"target_per_second": 3, "api_per_second": 25, "card_ops_per_second": 6},
    )
    await bot.fault("im.message.reply", 230020, count=8)
    await bot.fault("cardkit.card.create", 99991400, count=6, http_status=429)
    await bot.fault("cardkit.card.create", 1, count=3, http_status=502)
    # Frames are skipped under pressure; the final update (one full card update, a row) is
    # retried until it lands, so its faults are the ones every card meets.
    await bot.fault("cardkit.card_element.content", 1, count=3, http_status=500)
    await bot.fault("cardkit.card.update", 99991400, count=5, http_status=429)
    await bot.fault("cardkit.card.update", 1, count=4, http_status=503)
    await bot.fault("cardkit.card.update", 1, count=2, http_status=504)
    dropped = _drop_responses_after_commit(bot, "/reply", count=5)

    asked: list[tuple[str, str, str]] = []  # (run id, user message id, chat id)
    for n in range(MESSAGES):
        chat_id, conversation_id, user = chats[n % len(chats)]
        bot.chat_id, bot.conversation_id, bot.user_id = chat_id, conversation_id, user
        run_id, message_id = await bot.ask(text=f"answer {n} ", repeat=3, pieces=3, delay=0.05)
        asked.append((run_id, message_id, chat_id))
        if n in (8, 20):  # tokens expire while earlier cards are still streaming
            await bot.rig.control("POST", "/tokens/expire", json={"app_id": app_id})

    await asyncio.gather(*(bot.wait_done(run_id, timeout=45) for run_id, _, _ in asked))
    await bot.ob.wait_idle(10)

    replies: list[dict[str, Any]] = []
    for chat_id in dict.fromkeys(c for _, _, c in asked):
        bot.chat_id = chat_id
        replies += await bot.bot_messages()
    assert len(replies) == MESSAGES, [(r["parent_id"], r["text"]) for r in replies]
    for n, (run_id, message_id, _) in enumerate(asked):
        [reply] = [r for r in replies if r["parent_id"] == message_id]
        run, message = await bot.stored(run_id)
        assert run.status == "succeeded" and message.status == "completed", message.error
        assert message.body == f"answer {n} " * 3
        assert reply["msg_type"] == "interactive" and reply["streaming"] is False
        assert reply["text"] == message.body + DONE

    # The storm did happen.
    codes = [c.code for c in bot.calls]
    assert codes.count(230020) >= 8 and codes.count(99991400) >= 11
    assert 99991663 in codes  # expired tokens were met and refreshed
    assert len(dropped) == 5
    assert time.monotonic() - started < 60


async def test_a_long_reply_with_a_table_arrives_complete_in_parts(bot: Bot) -> None:
    """Over 30 KB with a markdown table: split into cards under the budget, nothing lost."""
    rows = "".join(f"| {n} | 名称 {n} | `value-{n:05d}` | ok |\n" for n in range(900))
    text = (
        "# Report\n\nThe figures, one row each:\n\n"
        "| # | name | value | state |\n|---|---|---|---|\n" + rows + "\nThat is all.\n"
    )
    assert len(text.encode()) > 30 * 1024
    run_id, message_id = await bot.ask(text=text, pieces=30, delay=0.01)
    await bot.wait_done(run_id, timeout=30)
    replies = await bot.bot_messages()
    _, message = await bot.stored(run_id)
    assert message.status == "completed" and message.body == text
    assert len(replies) >= 2
    assert "".join(card_body(r) for r in replies) == text
    assert all(r["parent_id"] == message_id and r["streaming"] is False for r in replies)
    assert all(len(r["text"].encode()) <= CARD_BUDGET for r in replies)
    assert all(card_body(r).endswith("\n") for r in replies)  # table rows are never cut
