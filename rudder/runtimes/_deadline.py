"""A run's overall time limit, applied to each wait rather than around a whole stream.

Wrapping an async generator's `yield`s in `asyncio.timeout` would cancel whatever the consumer
happens to be doing between events; bounding each read keeps the timeout inside the runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from .base import RunTimedOut

T = TypeVar("T")


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = asyncio.get_running_loop().time() + seconds

    async def run(self, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(self.at):
                return await awaitable
        except TimeoutError:
            raise RunTimedOut(f"timed out after {fmt_seconds(self.seconds)}") from None
