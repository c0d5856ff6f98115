"""Rate limits and injected API failures."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


class SlidingWindow:
    """Counts events per key within a trailing window of real (monotonic) time."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, ...], deque[float]] = {}

    def hit(self, key: tuple[str, ...], limit: int, window_s: float) -> float | None:
        """Record a hit; if over ``limit``, don't record it and return seconds until a slot frees."""
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= window_s:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.0, window_s - (now - hits[0]))
        hits.append(now)
        return None

    def clear(self) -> None:
        self._hits.clear()


@dataclass(slots=True)
class ApiFault:
    """Fail the next ``remaining`` calls of ``api`` (an API name or a path prefix)."""

    api: str
    code: int
    http_status: int
    msg: str
    remaining: int
    app_id: str | None = None

    def matches(self, api: str, path: str, app_id: str | None) -> bool:
        if self.app_id is not None and app_id is not None and self.app_id != app_id:
            return False
        return self.api == api or (self.api.startswith("/") and path.startswith(self.api))


@dataclass(slots=True)
class RateLimited:
    limit: int
    reset_s: int


class ApiLimiter:
    """Per app x API windows of 1 s and 1 min; over either → HTTP 429 + 99991400."""

    def __init__(self) -> None:
        self.window = SlidingWindow()

    def check(self, app_id: str, api: str, per_second: int, per_minute: int) -> RateLimited | None:
        wait = self.window.hit(("s", app_id, api), per_second, 1.0)
        if wait is not None:
            return RateLimited(limit=per_second, reset_s=max(1, round(wait)))
        wait = self.window.hit(("m", app_id, api), per_minute, 60.0)
        if wait is not None:
            return RateLimited(limit=per_minute, reset_s=max(1, round(wait)))
        return None
