"""Access tokens with Feishu's rotation rule.

A token lives 2 h. Asking again while the newest one has >= 30 min left returns that same
token (with a smaller ``expire``); with < 30 min left a new token is minted and the old one
stays valid until its own expiry (auth-v3 tenant_access_token_internal doc; reference §3.1).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

TOKEN_TTL_S = 7200
ROTATE_BELOW_S = 1800

TokenKind = Literal["tenant", "app"]


@dataclass(slots=True)
class Token:
    value: str
    app_id: str
    kind: TokenKind
    expires_at: float


class TokenStore:
    def __init__(self) -> None:
        self._by_value: dict[str, Token] = {}
        self._newest: dict[tuple[str, TokenKind], Token] = {}

    def issue(self, app_id: str, kind: TokenKind, now: float) -> tuple[Token, int]:
        """Return ``(token, expire)`` following the rotation rule."""
        current = self._newest.get((app_id, kind))
        if current is not None and current.expires_at - now >= ROTATE_BELOW_S:
            return current, int(current.expires_at - now)
        token = Token(
            value="t-" + secrets.token_hex(20),
            app_id=app_id,
            kind=kind,
            expires_at=now + TOKEN_TTL_S,
        )
        self._by_value[token.value] = token
        self._newest[(app_id, kind)] = token
        self._sweep(now)
        return token, TOKEN_TTL_S

    def lookup(self, value: str, now: float) -> Token | None:
        token = self._by_value.get(value)
        if token is None or token.expires_at <= now:
            return None
        return token

    def expire(self, now: float, app_id: str | None = None) -> int:
        """Expire every token (of one app) now; the next issue mints fresh ones."""
        count = 0
        for token in self._by_value.values():
            if (app_id is None or token.app_id == app_id) and token.expires_at > now:
                token.expires_at = now
                count += 1
        return count

    def _sweep(self, now: float) -> None:
        # Forget long-dead tokens so the store doesn't grow without bound.
        dead = [v for v, t in self._by_value.items() if t.expires_at < now - TOKEN_TTL_S]
        for value in dead:
            del self._by_value[value]
