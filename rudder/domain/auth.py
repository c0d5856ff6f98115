"""Passwords (argon2id), signing in, and API tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import ApiToken, User, utcnow
from rudder.domain.errors import NotFound

T = TypeVar("T")
TOKEN_PREFIX = "rdr_"
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()
# argon2 takes a few hundred milliseconds of CPU on purpose; on the event loop that stalls every
# bot's 3-second ack window (three failed sign-ins stalled it 537 ms). It runs in these threads
# instead (argon2-cffi releases the GIL); a few, so a flood of sign-ins queues here rather than
# taking every core from the loop.
ARGON2_NICENESS = 10


def _lower_priority() -> None:
    """On Linux, niceness is per thread (and inherited by the lanes argon2 starts): the loop's
    thread then gets the CPU first when hashing would otherwise delay it."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICENESS)


_argon2_threads = ThreadPoolExecutor(
    max_workers=min(2, os.cpu_count() or 1),
    thread_name_prefix="rudder-argon2",
    initializer=_lower_priority,
)


async def _off_loop(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_argon2_threads, fn, *args)


async def hash_password_async(password: str) -> str:
    return await _off_loop(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await _off_loop(verify_password, password_hash, password)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    An unknown email (or a user without a password) still pays for one argon2 verification, so
    the answer takes about as long as a wrong password and does not tell which emails exist.
    """
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None or not user.password_hash:
        await verify_password_async(await _off_loop(_dummy_hash), password)
        return None
    if not await verify_password_async(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password_async(password)
    return user


def password_fingerprint(password_hash: str | None) -> str:
    """Changes whenever the password does; sessions remember it so a new password ends them."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


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


async def list_tokens(
    session: AsyncSession, org_id: str, *, user_id: str | None = None
) -> list[ApiToken]:
    """The organization's tokens, newest first; only `user_id`'s own when it is given."""
    query = select(ApiToken).where(ApiToken.org_id == org_id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(await session.scalars(query.order_by(ApiToken.created_at.desc())))


async def get_token(session: AsyncSession, token_id: str) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound("API token not found")
    return row


def revoke_token(row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
