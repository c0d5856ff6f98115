"""Instances: each Rudder process that serves bots heartbeats in `instances` (DB clock)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import new_id

# One key for "joining the cluster", so two instances starting together see each other.
_JOIN_LOCK = 0x52_55_44_44_01


@dataclass(frozen=True, slots=True)
class InstanceRow:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool


def new_instance_id() -> str:
    return new_id()


def host_key() -> str:
    """This machine and PID namespace: where a recorded pid can be checked for life."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}#pidns:{namespace}"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


async def _reap_local(session: AsyncSession, instance_id: str) -> None:
    """A restart after a crash on the same machine need not wait for the dead process's
    leases to expire: its pid is gone, so it holds no connection. (A reused pid only makes
    us wait, as for any other host.)"""
    rows = await session.execute(
        text("SELECT id, pid FROM instances WHERE hostname = :host AND id <> :me"),
        {"host": host_key(), "me": instance_id},
    )
    dead = [row_id for row_id, pid in rows.all() if _gone(pid)]
    if dead:
        await session.execute(
            text("UPDATE bot_leases SET expires_at = now() WHERE owner_instance_id = ANY(:ids)"),
            {"ids": dead},
        )
        await session.execute(text("DELETE FROM instances WHERE id = ANY(:ids)"), {"ids": dead})


async def join(sessions: async_sessionmaker[AsyncSession], instance_id: str, dead_s: float) -> bool:
    """Register this instance; True when no other instance is alive (a cold start)."""
    async with sessions() as session, session.begin():
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _JOIN_LOCK})
        await _reap_local(session, instance_id)
        others = await session.scalar(
            text(
                "SELECT count(*) FROM instances WHERE id <> :me "
                "AND heartbeat_at > now() - make_interval(secs => :dead)"
            ),
            {"me": instance_id, "dead": dead_s},
        )
        await _upsert(session, instance_id)
    return not others


async def heartbeat(sessions: async_sessionmaker[AsyncSession], instance_id: str) -> None:
    async with sessions() as session, session.begin():
        await _upsert(session, instance_id)


async def _upsert(session: AsyncSession, instance_id: str) -> None:
    await session.execute(
        text(
            "INSERT INTO instances (id, created_at, hostname, pid, heartbeat_at) "
            "VALUES (:id, now(), :host, :pid, now()) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()"
        ),
        {"id": instance_id, "host": host_key(), "pid": os.getpid()},
    )


async def alive(sessions: async_sessionmaker[AsyncSession], dead_s: float) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            text(
                "SELECT id FROM instances "
                "WHERE heartbeat_at > now() - make_interval(secs => :dead) ORDER BY id"
            ),
            {"dead": dead_s},
        )
        return list(rows)


async def leave(sessions: async_sessionmaker[AsyncSession], instance_id: str) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM instances WHERE id = :id"), {"id": instance_id})


async def listing(session: AsyncSession, dead_s: float) -> list[InstanceRow]:
    rows = await session.execute(
        text(
            "SELECT id, hostname, pid, created_at, heartbeat_at, "
            "heartbeat_at > now() - make_interval(secs => :dead) AS alive "
            "FROM instances ORDER BY created_at"
        ),
        {"dead": dead_s},
    )
    return [InstanceRow(*row) for row in rows.all()]


async def forget_dead(session: AsyncSession, older_than_s: float) -> None:
    """Rows of instances gone for long only clutter `rudder status`."""
    await session.execute(
        text("DELETE FROM instances WHERE heartbeat_at < now() - make_interval(secs => :s)"),
        {"s": older_than_s},
    )
