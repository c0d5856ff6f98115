"""No card keeps showing work after its run ended: the sweep settles what the reply could not."""

from __future__ import annotations

from rudder import texts
from rudder.feishu.card_controls import is_working
from rudder.sweeper import Sweeper
from tests.helpers import card_buttons, card_footer
from tests.outbound.conftest import Bot

CARD_IN_INTERACTION = 200810  # a CardKit refusal that is not retried


async def test_a_card_whose_final_update_failed_is_settled_by_the_sweep(bot: Bot) -> None:
    # The final update and the reply's own attempt to settle the card both fail for good.
    await bot.fault("cardkit.card.update", CARD_IN_INTERACTION, count=2)
    run_id, _ = await bot.ask(text="the answer", pieces=3, delay=0.01)
    await bot.wait_done(run_id)
    replies = await bot.bot_messages()
    # The text is not lost (a plain message), but the card still shows Stop and streams.
    assert [r["msg_type"] for r in replies] == ["interactive", "text"]
    assert replies[1]["text"] == "the answer"
    assert is_working(replies[0]["card"]) and card_buttons(replies[0]) == [texts.CARD_BUTTON_STOP]

    sweeper = Sweeper(bot.rig.services)
    sweeper.stale_after_s = 0.0
    bot.ob.shared_horizon_s = 0.0  # PostgreSQL: the run ended long enough ago
    assert await sweeper.sweep() >= 1
    await bot.ob.wait_idle(10)
    card, text = await bot.bot_messages()
    assert not is_working(card["card"]) and card["streaming"] is False
    assert card["text"] == texts.CARD_MOVED  # it points at the message, never repeats it
    assert card_buttons(card) == [] and card_footer(card) is None
    assert text["text"] == "the answer"
    # Settled once: later sweeps leave it alone.
    assert await sweeper.sweep() == 0


async def test_a_card_left_streaming_by_a_lost_final_is_settled_with_its_text(bot: Bot) -> None:
    """The reply ended but its final update vanished (the row was lost, say to a crash between
    the run's end and the update): the sweep gives the card its text, footer and New."""
    from sqlalchemy import delete

    from rudder.db.models import OutboxItem
    from rudder.feishu import reply_calls as calls

    await bot.fault("cardkit.card.update", CARD_IN_INTERACTION, count=2)
    run_id, _ = await bot.ask(text="kept safe", pieces=2, delay=0.01)
    await bot.wait_done(run_id)
    async with bot.rig.services.sessions() as session, session.begin():
        await session.execute(
            delete(OutboxItem).where(
                OutboxItem.run_id == run_id, OutboxItem.kind.in_((calls.CARD_FINAL, calls.TEXT))
            )
        )
    card, _ = await bot.bot_messages()
    assert is_working(card["card"])
    bot.ob.shared_horizon_s = 0.0  # PostgreSQL: the run ended long enough ago
    await bot.ob.sweep(older_than_s=0.0)
    await bot.ob.wait_idle(10)
    card, _ = await bot.bot_messages()
    assert not is_working(card["card"])
    assert card["text"] == "kept safe\n" + texts.CARD_FOOTER_DONE
    assert card_buttons(card) == [texts.CARD_BUTTON_NEW]
