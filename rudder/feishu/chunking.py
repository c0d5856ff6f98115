"""Split long replies into parts that fit Feishu's size limits, without losing a character.

Limits count the request's `content` JSON string in bytes (reference §6.7): text ≤ 150 KB, post
and card ≤ 30 KB, escapes included. Each budget below leaves room for the JSON around the text
(card skeleton, `{"text": ...}`) and for the state line a stopped or failed card gets.
"""

from __future__ import annotations

import json

TEXT_BUDGET = 140 * 1024
CARD_BUDGET = 28 * 1024

# Prefer the latest boundary of each kind, but only if it keeps at least this share of the budget;
# a part cut right after its first paragraph would waste messages.
_MIN_FILL = 0.5
_BOUNDARIES = ("\n\n", "\n", " ")


def cost(text: str) -> int:
    """Bytes `text` takes inside a JSON string (UTF-8, with escapes, without the quotes)."""
    return len(json.dumps(text, ensure_ascii=False).encode(errors="surrogatepass")) - 2


def _fit(text: str, budget: int) -> int:
    """The longest prefix length (in characters) whose cost stays within `budget`."""
    if cost(text) <= budget:
        return len(text)
    lo, hi = 0, min(len(text), budget)  # a character costs at least one byte
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def split_text(text: str, budget: int) -> list[str]:
    """Ordered parts whose concatenation is `text`, each within `budget` bytes.

    Cuts after a paragraph break, else a line break, else a space, else between characters
    (Python strings are code points, so a multi-byte character is never cut in half). The first
    part depends only on the first `budget` bytes, so a growing stream never re-splits a part
    that already overflowed.
    """
    if budget < 8:
        raise ValueError("budget too small")
    parts: list[str] = []
    rest = text
    while cost(rest) > budget:
        limit = _fit(rest, budget)
        cut = limit
        for boundary in _BOUNDARIES:
            at = rest.rfind(boundary, 0, limit - len(boundary) + 1)
            if at >= 0 and at + len(boundary) >= limit * _MIN_FILL:
                cut = at + len(boundary)
                break
        cut = max(cut, 1)
        parts.append(rest[:cut])
        rest = rest[cut:]
    parts.append(rest)
    return parts
