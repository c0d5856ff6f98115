"""The activity log: who did what to which entity (names and ids, never secret values)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import ActivityLog, Integration, User

MAX_LIMIT = 500


def record(
    session: AsyncSession,
    *,
    org_id: str | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
    agent_id: str | None = None,
) -> ActivityLog:
    if agent_id is None and entity_type == "agent":
        agent_id = entity_id
    row = ActivityLog(
        org_id=org_id,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        details=details or {},
        agent_id=agent_id,
    )
    session.add(row)
    return row


async def query(
    session: AsyncSession,
    org_id: str,
    *,
    actor: str | None = None,
    agent_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[ActivityLog]:
    """Newest first. `actor` is a label (`user:<id>`, `agent:<id>`, `system`, `cli`), a user
    id or an email; `action` an exact action or a prefix ending in `.` (`agent.`)."""
    q = select(ActivityLog).where(ActivityLog.org_id == org_id)
    if actor:
        labels = {actor, f"user:{actor}", f"agent:{actor}"}
        if "@" in actor:
            user_id = await session.scalar(select(User.id).where(User.email == actor.lower()))
            if user_id:
                labels.add(f"user:{user_id}")
        q = q.where(ActivityLog.actor.in_(labels))
    if agent_id:
        # Also what happened to its bot (integration rows are recorded by their own id).
        bots = select(Integration.id).where(Integration.agent_id == agent_id)
        q = q.where(
            or_(
                ActivityLog.agent_id == agent_id,
                (ActivityLog.entity_type == "integration") & ActivityLog.entity_id.in_(bots),
            )
        )
    if action:
        q = q.where(
            ActivityLog.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else ActivityLog.action == action
        )
    if since:
        q = q.where(ActivityLog.created_at >= since)
    if until:
        q = q.where(ActivityLog.created_at < until)
    q = q.order_by(ActivityLog.created_at.desc(), ActivityLog.id).limit(min(limit, MAX_LIMIT))
    return list(await session.scalars(q))


async def actor_names(session: AsyncSession, rows: list[ActivityLog]) -> dict[str, str]:
    """Readable names of the actors of `rows` (users by name, agents by name)."""
    from rudder.db.models import Agent

    user_ids = {r.actor[5:] for r in rows if r.actor.startswith("user:")}
    agent_ids = {r.actor[6:] for r in rows if r.actor.startswith("agent:")}
    out: dict[str, str] = {}
    if user_ids:
        for uid, name in (
            await session.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
        ).all():
            out[f"user:{uid}"] = name
    if agent_ids:
        for aid, name in (
            await session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(agent_ids)))
        ).all():
            out[f"agent:{aid}"] = name
    return out


__all__ = ["MAX_LIMIT", "actor_names", "query", "record"]
