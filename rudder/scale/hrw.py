"""Rendezvous (highest random weight) hashing: which live instance should hold each bot.

Every instance computes the same answer from the same list, with no coordinator; when an
instance joins or leaves only the bots it wins or held move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(key: str, node: str) -> int:
    digest = hashlib.blake2b(f"{key}\x00{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, nodes: Iterable[str]) -> str | None:
    best: tuple[int, str] | None = None
    for node in nodes:
        candidate = (weight(key, node), node)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best else None
