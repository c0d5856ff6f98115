"""Send pacing: stay under Feishu's rate limits before Feishu enforces them.

Feishu limits every OpenAPI per app to 50 calls a second and 1,000 a minute (HTTP 429 with
99991400), and messages sent, replied or edited in one chat (or to one user) to 5 a second
(HTTP 400 with 230020) — reference §6.8. A busy bot that ignores this collects those errors,
retries them and delays everything behind them. So every call of an app first takes a slot from
its buckets here: one per API (the path with its ids blanked out) for the second and the minute,
and one per chat for message sends, replies and edits. Replies, card updates, notices and
binding prompts all go through `BotClient.call`, so they share the same buckets.

The buckets are GCRA ("virtual scheduling") with a small burst, sized so that no sliding window
of one second (or one minute) can ever hold more calls than Feishu allows: rate × window +
burst ≤ limit. A call that would exceed waits for its slot; a streaming card frame instead
asks `try_take` and is skipped when no slot is free (the next frame carries the whole text
anyway), so card updates coalesce under pressure instead of queueing.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

# Feishu's limits (reference §6.8).
API_PER_SECOND = 50
API_PER_MINUTE = 1000
CHAT_PER_SECOND = 5
# Bursts; the rates below leave room for them inside every window.
API_BURST_S = 10
API_BURST_MIN = 100
CHAT_BURST = 1


@dataclass
class Bucket:
    """One GCRA limiter: `rate` per second on average, `burst` calls at once."""

    rate: float
    burst: int
    _tat: float = 0.0  # theoretical arrival time of the next call

    def delay(self, now: float) -> float:
        tolerance = (self.burst - 1) / self.rate
        return max(0.0, max(self._tat, now) - now - tolerance)

    def reserve(self, now: float) -> float:
        wait = self.delay(now)
        self._tat = max(self._tat, now) + 1.0 / self.rate
        return wait


def _second() -> Bucket:
    return Bucket((API_PER_SECOND - API_BURST_S) / 1.0, API_BURST_S)


def _minute() -> Bucket:
    return Bucket((API_PER_MINUTE - API_BURST_MIN) / 60.0, API_BURST_MIN)


def _chat() -> Bucket:
    return Bucket(float(CHAT_PER_SECOND - CHAT_BURST), CHAT_BURST)


_ID_SEGMENT = re.compile(r"^(?:o[mcu]_|[0-9])|.{20,}")


def api_key(method: str, path: str) -> str:
    """The API a call belongs to: the method and the path with its ids blanked out."""
    segments = ["*" if _ID_SEGMENT.search(s) else s for s in path.split("?", 1)[0].split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


# Message APIs that count against the 5-per-second limit of their chat.
CHAT_APIS = frozenset(
    {
        "POST /open-apis/im/v1/messages",
        "POST /open-apis/im/v1/messages/*/reply",
        "PUT /open-apis/im/v1/messages/*",
        "PATCH /open-apis/im/v1/messages/*",
    }
)
_MAX_CHATS = 10_000  # idle chat buckets are dropped beyond this many


class Pacer:
    """The buckets of one app."""

    def __init__(self) -> None:
        self._apis: dict[str, tuple[Bucket, Bucket]] = {}
        self._chats: dict[str, Bucket] = {}
        self.waited_s = 0.0  # total time calls waited (figures)
        self.skipped = 0  # frames skipped because no slot was free

    def _buckets(self, api: str, chat: str | None) -> list[Bucket]:
        pair = self._apis.get(api)
        if pair is None:
            pair = self._apis[api] = (_second(), _minute())
        buckets = [*pair]
        if chat and api in CHAT_APIS:
            bucket = self._chats.get(chat)
            if bucket is None:
                if len(self._chats) >= _MAX_CHATS:
                    now = time.monotonic()
                    self._chats = {k: b for k, b in self._chats.items() if b._tat > now}
                bucket = self._chats[chat] = _chat()
            buckets.append(bucket)
        return buckets

    async def take(self, api: str, chat: str | None = None) -> None:
        now = time.monotonic()
        wait = max(b.reserve(now) for b in self._buckets(api, chat))
        if wait > 0:
            self.waited_s += wait
            await asyncio.sleep(wait)

    def try_take(self, api: str, chat: str | None = None) -> bool:
        """Take a slot only if one is free now (for calls that may be skipped)."""
        now = time.monotonic()
        buckets = self._buckets(api, chat)
        if any(b.delay(now) > 0 for b in buckets):
            self.skipped += 1
            return False
        for b in buckets:
            b.reserve(now)
        return True


_PACERS: dict[str, Pacer] = {}


def pacer(app_id: str) -> Pacer:
    """The pacer of `app_id`, shared by every client of that app in this process."""
    found = _PACERS.get(app_id)
    if found is None:
        found = _PACERS[app_id] = Pacer()
    return found
