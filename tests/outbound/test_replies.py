"""Replies to Feishu-sourced runs: streaming card, plain text, typing, stopped and failed runs."""

from __future__ import annotations

import asyncio

from rudder import texts
from rudder.feishu.reply_stream import Ending, card_text
from tests.helpers import wait_for
from tests.outbound.conftest import Bot


def assert_card_rules(bot: Bot) -> None:
    """Sequences strictly increase per card; at most 10 ops in any one second; none refused."""
    ops = bot.card_ops()
    assert ops, "no CardKit updates were made"
    for calls in ops.values():
        seqs = [c.body["sequence"] for c in calls]
        assert seqs == sorted(set(seqs)), seqs
        assert all(c.code == 0 for c in calls), [c.code for c in calls]
        times = [c.at for c in calls]
        for i, start in enumerate(times):
            assert sum(1 for t in times[i:] if t - start < 1.0) <= 10


async def test_streaming_card_ends_with_the_runs_text(bot: Bot) -> None:
    words = "".join(f"word{i} " for i in range(60)) + "done ✓ 完成"
    run_id, _ = await bot.ask(text=words, pieces=60, delay=0.02)
    await bot.wait_done(run_id)

    run, message = await bot.stored(run_id)
    assert run.status == "succeeded" and message.body == words
    replies = await bot.bot_messages()
    assert len(replies) == 1
    reply = replies[0]
    assert reply["msg_type"] == "interactive" and reply["streaming"] is False
    # Two views, one truth: the reply's text, then the compact footer.
    assert reply["text"] == words + "\n" + texts.CARD_FOOTER_DONE
    assert reply["text"] == card_text(Ending("succeeded", words, None), run_id)
    card = reply["card"]
    assert card["schema"] == "2.0"
    assert [e["tag"] for e in card["body"]["elements"]] == ["markdown", "markdown", "button"]
    [button] = [e for e in card["body"]["elements"] if e["tag"] == "button"]
    assert button["text"]["content"] == texts.CARD_BUTTON_NEW
    frames = [c for c in bot.calls if c.path.endswith("/content")]
    assert len(frames) >= 3  # it streamed, not one update at the end
    assert_card_rules(bot)


async def test_plain_text_style_is_one_reply_at_the_end(bot: Bot) -> None:
    await bot.set_style("plain_text")
    run_id, user_message = await bot.ask(text="hello in plain text", pieces=4, delay=0.01)
    await bot.wait_done(run_id)
    replies = await bot.bot_messages()
    assert [(r["msg_type"], r["text"], r["parent_id"]) for r in replies] == [
        ("text", "hello in plain text", user_message)
    ]
    assert not bot.card_ops()


async def test_typing_reaction_while_the_run_works(bot: Bot) -> None:
    run_id, user_message = await bot.ask(text="x" * 40, pieces=20, delay=0.03)

    async def typing() -> bool:
        items = (await bot.rig.control("GET", f"/chats/{bot.chat_id}/messages"))["items"]
        mine = next(m for m in items if m["message_id"] == user_message)
        return any(r["emoji_type"] == "Typing" for r in mine["reactions"])

    await wait_for(typing, timeout=5)
    await bot.wait_done(run_id)
    assert not await typing()
    kinds = [c.method for c in bot.calls if "/reactions" in c.path]
    assert kinds == ["POST", "DELETE"]


async def test_stopped_run_shows_on_the_card(bot: Bot) -> None:
    run_id, _ = await bot.ask(text="tick " * 200, pieces=200, delay=0.02)

    async def some_text() -> bool:
        return any(c.path.endswith("/content") for c in bot.calls)

    await wait_for(some_text, timeout=5)
    cancelled = await bot.rig.client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    await bot.wait_done(run_id)
    run, message = await bot.stored(run_id)
    assert run.status == "cancelled"
    [reply] = await bot.bot_messages()
    assert reply["streaming"] is False
    assert reply["text"].endswith(texts.REPLY_STOPPED)
    assert reply["text"].startswith(message.body.rstrip())
    assert_card_rules(bot)


async def test_failed_run_shows_the_reason_on_the_card(bot: Bot) -> None:
    run_id, _ = await bot.ask(text="partial answer", fail="the model went away")
    await bot.wait_done(run_id)
    run, _ = await bot.stored(run_id)
    assert run.status == "failed" and run.error and "the model went away" in run.error
    [reply] = await bot.bot_messages()
    # The Feishu user sees a generic line with the run's reference, never the error itself.
    assert reply["text"] == "partial answer\n" + texts.REPLY_FAILED_GENERIC.format(ref=run_id[:8])
    assert "the model went away" not in reply["text"]
    assert reply["streaming"] is False


async def test_a_second_run_replies_separately(bot: Bot) -> None:
    first, _ = await bot.ask(text="one")
    await bot.wait_done(first)
    second, _ = await bot.ask(text="two")
    await bot.wait_done(second)
    await asyncio.sleep(0)
    done = "\n" + texts.CARD_FOOTER_DONE
    assert [r["text"] for r in await bot.bot_messages()] == ["one" + done, "two" + done]
