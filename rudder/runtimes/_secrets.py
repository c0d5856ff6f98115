"""Secret references in runtime configs, and keeping their values out of failure reasons."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from .base import RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import SecretOrStr, SecretRef

_MASK = "***"
# Very short values would mask ordinary words in a reason; no real credential is this short.
_MIN_REDACTED_LEN = 4


class Redactor:
    """Collects the secret values a run resolved and masks them in any text shown to people."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str) -> None:
        if len(value) >= _MIN_REDACTED_LEN:
            self._values.add(value)

    def __call__(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, _MASK)
        return text


async def resolve_secret(ctx: RunContext, name: str, redactor: Redactor) -> str:
    try:
        value = await ctx.resolve_secret(name)
    except RuntimeError_:
        raise
    except Exception as exc:
        raise RuntimeError_(
            f"secret {name!r} could not be resolved ({type(exc).__name__})"
        ) from None
    redactor.add(value)
    return value


async def resolve_values(
    ctx: RunContext, values: Mapping[str, SecretOrStr], redactor: Redactor
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, SecretRef):
            resolved[key] = await resolve_secret(ctx, value.secret, redactor)
        else:
            resolved[key] = value
    return resolved


async def redacting(
    events: AsyncGenerator[RunEvent, None], redactor: Redactor
) -> AsyncGenerator[RunEvent, None]:
    """Passes events through; masks resolved secrets in everything kept beside the reply.

    Log lines, thinking, tool calls and results, usage: their text and every string inside
    their data (the transcript, `runs.usage`) are masked, and so is the reason of a failure.
    """
    # aclosing: if this stream is closed between events, the inner one releases its resources now.
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                # Log lines (stderr, banners), tool calls and results are where a CLI might
                # echo its environment.
                if event.kind is not RunEventKind.TEXT:
                    event = dataclasses.replace(
                        event, text=redactor(event.text), data=_mask(event.data, redactor)
                    )
                yield event
        except RuntimeError_ as exc:
            # Same class (a timeout stays a timeout), with any secret value masked.
            raise type(exc)(redactor(str(exc))) from None


def _mask(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, Mapping):
        return {k: _mask(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, redactor) for v in value]
    return value
