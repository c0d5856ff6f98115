"""What `rudder status` reports about a PostgreSQL deployment."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Integration
from rudder.scale import instances, leases
from rudder.scale.config import ScaleConfig
from rudder.scale.runqueue import QUEUE


async def cluster(session: AsyncSession, config: ScaleConfig | None = None) -> dict[str, Any]:
    config = config or ScaleConfig.from_env()
    names = {
        i.id: i.bot_name or i.app_id or i.id
        for i in await session.scalars(
            select(Integration).where(
                Integration.status == "connected", Integration.transport == "long_connection"
            )
        )
    }
    held: dict[str, list[str]] = {}
    holders: set[str] = set()
    for lease in await leases.listing(session):
        if lease.valid and lease.integration_id in names:
            held.setdefault(lease.owner, []).append(names[lease.integration_id])
            holders.add(lease.integration_id)
    report_instances = [
        {
            "id": row.id,
            "hostname": row.hostname,
            "pid": row.pid,
            "started_at": row.started_at,
            "heartbeat_at": row.heartbeat_at,
            "alive": row.alive,
            "bots": sorted(held.get(row.id, [])),
        }
        for row in await instances.listing(session, config.dead_after_s)
    ]
    jobs: dict[str, int] = dict(
        (
            await session.execute(
                text(
                    "SELECT status::text, count(*) FROM procrastinate_jobs "
                    "WHERE queue_name = :q AND status IN ('todo', 'doing') GROUP BY status"
                ),
                {"q": QUEUE},
            )
        ).all()
    )
    workers = [
        {"id": row[0], "running": row[1], "last_heartbeat": row[2]}
        for row in await session.execute(
            text(
                "SELECT w.id, (SELECT count(*) FROM procrastinate_jobs j "
                "WHERE j.worker_id = w.id AND j.status = 'doing'), w.last_heartbeat "
                "FROM procrastinate_workers w ORDER BY w.id"
            )
        )
    ]
    return {
        "instances": report_instances,
        "workers": workers,
        "queue": {"todo": jobs.get("todo", 0), "doing": jobs.get("doing", 0)},
        "unheld_bots": sorted(names[i] for i in names if i not in holders),
    }
