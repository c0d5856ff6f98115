"""Passwords (argon2id) and API tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import ApiToken, User, utcnow

TOKEN_PREFIX = "rdr_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    session: AsyncSession,
    *,
    org_id: str,
    name: str,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> tuple[ApiToken, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        org_id=org_id, name=name, user_id=user_id, agent_id=agent_id, token_hash=token_hash(token)
    )
    session.add(row)
    await session.flush()
    return row, token


async def resolve_token(session: AsyncSession, token: str) -> tuple[ApiToken, User | None] | None:
    row = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    row.last_used_at = utcnow()
    user = await session.get(User, row.user_id) if row.user_id else None
    return row, user
