"""Which Rudder member a Feishu user is: one-time binding codes and stored bindings."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import BindingCode, FeishuUserBinding, Integration, Membership, User, utcnow
from rudder.domain import activity
from rudder.domain.errors import Forbidden, NotFound

CODE_TTL = timedelta(minutes=15)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def bound_user(
    session: AsyncSession, integration: Integration, open_id: str | None
) -> User | None:
    """The active member this Feishu user is bound to, or None."""
    if not open_id:
        return None
    row = await session.execute(
        select(User)
        .join(FeishuUserBinding, FeishuUserBinding.user_id == User.id)
        .join(
            Membership, (Membership.user_id == User.id) & (Membership.org_id == integration.org_id)
        )
        .where(
            FeishuUserBinding.integration_id == integration.id,
            FeishuUserBinding.open_id == open_id,
            Membership.status == "active",
        )
    )
    return row.scalars().first()


async def issue_code(
    session: AsyncSession, integration: Integration, open_id: str, union_id: str | None
) -> str:
    # 24 random bytes: not guessable; only the hash is stored, so a leaked database can't bind.
    code = secrets.token_urlsafe(24)
    session.add(
        BindingCode(
            org_id=integration.org_id,
            integration_id=integration.id,
            code_hash=code_hash(code),
            open_id=open_id,
            union_id=union_id,
            expires_at=utcnow() + CODE_TTL,
        )
    )
    await session.flush()
    return code


async def bind(
    session: AsyncSession,
    integration: Integration,
    open_id: str,
    union_id: str | None,
    user_id: str,
    actor: str,
) -> FeishuUserBinding:
    member = await session.scalar(
        select(Membership).where(
            Membership.org_id == integration.org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    if member is None:
        raise Forbidden(texts.FEISHU_BINDING_NOT_MEMBER)
    row = await session.scalar(
        select(FeishuUserBinding).where(
            FeishuUserBinding.integration_id == integration.id, FeishuUserBinding.open_id == open_id
        )
    )
    if row is None:
        row = FeishuUserBinding(
            org_id=integration.org_id,
            integration_id=integration.id,
            open_id=open_id,
            union_id=union_id,
            user_id=user_id,
        )
        session.add(row)
    else:
        row.user_id = user_id
    activity.record(
        session,
        org_id=integration.org_id,
        actor=actor,
        action="feishu.user_bound",
        entity_type="integration",
        entity_id=integration.id,
        details={"open_id": open_id, "user_id": user_id},
    )
    await session.flush()
    return row


async def redeem(
    session: AsyncSession, code: str, user_id: str
) -> tuple[FeishuUserBinding, Integration]:
    """Single use, 15 minutes, and only for a member of the bot's organization."""
    row = await session.scalar(select(BindingCode).where(BindingCode.code_hash == code_hash(code)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise NotFound(texts.FEISHU_BINDING_INVALID)
    integration = await session.get(Integration, row.integration_id)
    if integration is None:
        raise NotFound(texts.FEISHU_BINDING_INVALID)
    binding = await bind(
        session, integration, row.open_id, row.union_id, user_id, actor=f"user:{user_id}"
    )
    row.used_at = utcnow()
    return binding, integration
