"""Which Rudder member a Feishu user is: one-time binding codes and stored bindings."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import (
    Agent,
    BindingCode,
    FeishuUserBinding,
    InboundEvent,
    Integration,
    Membership,
    Organization,
    User,
    utcnow,
)
from rudder.domain import activity
from rudder.domain.errors import Forbidden, NotFound

CODE_TTL = timedelta(minutes=15)
# One prompt per sender per 10 minutes: a chatty unbound user must not get a link per message.
# Derived from the stored codes, so it holds across restarts and processes.
PROMPT_EVERY = timedelta(minutes=10)
# Senders the Members page offers for binding: seen this recently (bound ones always show).
SEEN_WINDOW = timedelta(days=30)


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


async def recent_prompt(
    session: AsyncSession, integration: Integration, open_id: str
) -> datetime | None:
    """When this sender was last sent a still-usable link, if within PROMPT_EVERY."""
    now = utcnow()
    issued: datetime | None = await session.scalar(
        select(func.max(BindingCode.created_at)).where(
            BindingCode.integration_id == integration.id,
            BindingCode.open_id == open_id,
            BindingCode.used_at.is_(None),
            BindingCode.expires_at > now,
            BindingCode.created_at > now - PROMPT_EVERY,
        )
    )
    return issued


async def issue_code(
    session: AsyncSession,
    integration: Integration,
    open_id: str,
    union_id: str | None,
    display_name: str | None = None,
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
            display_name=display_name,
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
    # Links still out for this sender would rebind it to whoever opens them next.
    await session.execute(
        update(BindingCode)
        .where(
            BindingCode.integration_id == integration.id,
            BindingCode.open_id == open_id,
            BindingCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
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
    if row.display_name and not binding.display_name:
        binding.display_name = row.display_name
    return binding, integration


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What the bind page shows before anyone confirms."""

    open_id: str
    display_name: str | None
    agent_name: str
    bot_name: str | None
    org_name: str
    org_id: str


async def peek(session: AsyncSession, code: str) -> CodeInfo | None:
    """The code's details without using it up; None when invalid, expired or used."""
    row = await session.scalar(select(BindingCode).where(BindingCode.code_hash == code_hash(code)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    found = (
        await session.execute(
            select(Integration, Agent, Organization)
            .join(Agent, Agent.id == Integration.agent_id)
            .join(Organization, Organization.id == Integration.org_id)
            .where(Integration.id == row.integration_id)
        )
    ).first()
    if found is None:
        return None
    integration, agent, org = found
    return CodeInfo(
        open_id=row.open_id,
        display_name=row.display_name,
        agent_name=agent.name,
        bot_name=integration.bot_name,
        org_name=org.name,
        org_id=org.id,
    )


async def unbind(session: AsyncSession, org_id: str, binding_id: str, actor: str) -> None:
    row = await session.get(FeishuUserBinding, binding_id)
    if row is None or row.org_id != org_id:
        raise NotFound("binding not found")
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action="feishu.user_unbound",
        entity_type="integration",
        entity_id=row.integration_id,
        details={"open_id": row.open_id, "user_id": row.user_id},
    )
    await session.delete(row)
    await session.flush()


@dataclass(frozen=True, slots=True)
class Identity:
    integration_id: str
    agent_id: str
    agent_name: str
    open_id: str
    union_id: str | None
    display_name: str | None
    binding_id: str | None
    user_id: str | None
    user_name: str | None
    last_seen_at: datetime | None


async def identities(session: AsyncSession, org_id: str) -> list[Identity]:
    """Feishu users seen by the organization's bots, unbound first, then most recently seen."""
    bots = {
        i.id: (i, a)
        for i, a in (
            await session.execute(
                select(Integration, Agent)
                .join(Agent, Agent.id == Integration.agent_id)
                .where(Integration.org_id == org_id)
            )
        ).all()
    }
    if not bots:
        return []
    bot_open_ids = {i.bot_open_id for i, _ in bots.values() if i.bot_open_id}
    seen: dict[tuple[str, str], datetime | None] = {
        (integration_id, open_id): at
        for integration_id, open_id, at in (
            await session.execute(
                select(
                    InboundEvent.integration_id,
                    InboundEvent.sender_open_id,
                    func.max(InboundEvent.received_at),
                )
                .where(
                    InboundEvent.integration_id.in_(list(bots)),
                    InboundEvent.sender_open_id.is_not(None),
                    InboundEvent.received_at > utcnow() - SEEN_WINDOW,
                )
                .group_by(InboundEvent.integration_id, InboundEvent.sender_open_id)
            )
        ).all()
        # A bot's own messages are not a person to bind.
        if open_id is not None and open_id not in bot_open_ids
    }
    bound = {
        (b.integration_id, b.open_id): (b, u)
        for b, u in (
            await session.execute(
                select(FeishuUserBinding, User)
                .join(User, User.id == FeishuUserBinding.user_id)
                .where(FeishuUserBinding.org_id == org_id)
            )
        ).all()
    }
    for key in bound:
        seen.setdefault(key, None)
    names = dict(
        (
            await session.execute(
                select(BindingCode.open_id, BindingCode.display_name).where(
                    BindingCode.org_id == org_id, BindingCode.display_name.is_not(None)
                )
            )
        ).all()
    )
    out = []
    for (integration_id, open_id), at in seen.items():
        _, agent = bots[integration_id]
        b, u = bound.get((integration_id, open_id), (None, None))
        out.append(
            Identity(
                integration_id=integration_id,
                agent_id=agent.id,
                agent_name=agent.name,
                open_id=open_id,
                union_id=b.union_id if b else None,
                display_name=(b.display_name if b else None) or names.get(open_id),
                binding_id=b.id if b else None,
                user_id=u.id if u else None,
                user_name=u.name if u else None,
                last_seen_at=at,
            )
        )
    out.sort(key=lambda i: i.last_seen_at.timestamp() if i.last_seen_at else 0.0, reverse=True)
    out.sort(key=lambda i: i.binding_id is not None)  # stable: unbound first
    return out


async def require_admin(session: AsyncSession, user_id: str | None, org_id: str) -> None:
    # Binding decides whose account a Feishu user acts as, so only owners and admins do it for
    # others; everyone links themselves through the bind page.
    member = await session.scalar(
        select(Membership).where(
            Membership.org_id == org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    if user_id is None or member is None or member.role not in ("owner", "admin"):
        raise Forbidden(texts.WEB_FEISHU_BIND_NOT_ALLOWED)
