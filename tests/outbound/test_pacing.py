"""Send pacing: a busy bot stays under Feishu's limits by itself (rudder/feishu/pacing.py)."""

from __future__ import annotations

import asyncio

from rudder.feishu import outbound, pacing
from rudder.feishu.errors import RATE_LIMITED_TARGET
from tests.outbound.conftest import Bot


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_no_window_ever_holds_more_than_feishu_allows() -> None:
    """3,000 calls of one API arriving at once, and 100 to one chat: every sliding second and
    minute of the schedule the buckets give stays within 50/s, 1,000/min and 5/s per chat."""
    p = pacing.Pacer()
    api = pacing.api_key("POST", "/open-apis/im/v1/messages/om_abc/reply")
    assert api == "POST /open-apis/im/v1/messages/*/reply" and api in pacing.CHAT_APIS
    second, minute = p._buckets(api, None)[:2]
    times = [max(second.reserve(0.0), minute.reserve(0.0)) for _ in range(3000)]
    assert _most_in_window(times, 1.0) <= pacing.API_PER_SECOND
    assert _most_in_window(times, 60.0) <= pacing.API_PER_MINUTE
    assert _most_in_window(times, 60.0) >= 0.9 * pacing.API_PER_MINUTE  # and not much slower
    chat = p._buckets(api, "oc_1")[2]
    chat_times = [chat.reserve(0.0) for _ in range(100)]
    assert _most_in_window(chat_times, 1.0) <= pacing.CHAT_PER_SECOND
    # Frames are skipped, not queued, when no slot is free.
    card = pacing.api_key("PUT", "/open-apis/cardkit/v1/cards/7355/elements/x/content")
    taken = sum(p.try_take(card) for _ in range(100))
    assert taken == pacing.API_BURST_S and p.skipped == 100 - taken


async def test_a_burst_of_notices_into_one_chat_meets_no_rate_limit(bot: Bot) -> None:
    """40 notices into one chat at once: each arrives, and the sandbox (which
    enforces 5/s per chat like Feishu) never had to answer 230020."""
    texts = [f"notice {i}" for i in range(40)]
    await asyncio.gather(
        *(
            outbound.send_notice(
                bot.rig.services, bot.integration_id, bot.chat_id, text, reply_to=None, key=text
            )
            for text in texts
        )
    )
    arrived = [m["text"] for m in await bot.bot_messages()]
    assert sorted(arrived) == sorted(texts)
    codes = [c.code for c in bot.calls if c.path == "/open-apis/im/v1/messages"]
    assert len(codes) == 40 and RATE_LIMITED_TARGET not in codes, codes
    sends = [c.at for c in bot.calls if c.path == "/open-apis/im/v1/messages"]
    assert _most_in_window(sends, 1.0) <= pacing.CHAT_PER_SECOND
