"""The activity log: who did what to which entity."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import ActivityLog


def record(
    session: AsyncSession,
    *,
    org_id: str | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> ActivityLog:
    row = ActivityLog(
        org_id=org_id,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        details=details or {},
    )
    session.add(row)
    return row
