"""The Feishu users an organization's bots have seen, their bindings, and who manages them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import (
    Agent,
    BindingCode,
    FeishuUserBinding,
    InboundEvent,
    Integration,
    Membership,
    User,
    utcnow,
)
from rudder.domain import activity
from rudder.domain.errors import Forbidden, NotFound
from rudder.feishu.bindings import SEEN_WINDOW


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
