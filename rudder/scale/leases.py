"""Bot-connection leases: at most one instance holds each bot's long connection.

Expiry is on the database clock only (`now()`), never a local one. The fencing token grows
each time the lease changes hands, so whatever a former holder still tries with its old token
(renewing, releasing) is refused. Sketch: stack-and-style §1.4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import new_id


@dataclass(frozen=True, slots=True)
class Grant:
    token: int
    previous_owner: str | None  # who held it before this call (None: nobody, or us)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    integration_id: str
    owner: str
    token: int
    expires_at: datetime
    valid: bool


class LeaseStore(Protocol):
    async def acquire(self, integration_id: str, owner: str, ttl_s: float) -> Grant | None:
        """Take or renew the lease; None while another owner's lease is still valid."""
        ...

    async def renew(self, integration_ids: list[str], owner: str, ttl_s: float) -> set[str]:
        """Extend the still-valid leases among these; returns the ones extended."""
        ...

    async def release(self, integration_id: str, owner: str, token: int) -> bool: ...


_ACQUIRE = text(
    """
    WITH prev AS (
        SELECT owner_instance_id, expires_at > now() AS valid
          FROM bot_leases WHERE integration_id = :bot
    )
    INSERT INTO bot_leases AS l (id, created_at, integration_id, owner_instance_id,
                                 fencing_token, expires_at)
    VALUES (:id, now(), :bot, :me, 1, now() + make_interval(secs => :ttl))
    ON CONFLICT (integration_id) DO UPDATE
       SET owner_instance_id = :me,
           expires_at = now() + make_interval(secs => :ttl),
           fencing_token = CASE WHEN l.owner_instance_id = :me AND l.expires_at > now()
                                THEN l.fencing_token ELSE l.fencing_token + 1 END
     WHERE l.owner_instance_id = :me OR l.expires_at <= now()
    RETURNING l.fencing_token, (SELECT owner_instance_id FROM prev)
    """
)

# Only a lease still valid can be extended: once it lapsed, someone else may hold it, and taking
# it back goes through _ACQUIRE (a new token).
_RENEW = text(
    "UPDATE bot_leases SET expires_at = now() + make_interval(secs => :ttl) "
    "WHERE owner_instance_id = :me AND expires_at > now() AND integration_id = ANY(:ids) "
    "RETURNING integration_id"
)

# A hand-over: only the current holder (same token) of a still-valid lease can end it early.
# Once it lapsed, the former holder is fenced like anyone else and its release writes nothing.
_RELEASE = text(
    "UPDATE bot_leases SET expires_at = now() "
    "WHERE integration_id = :bot AND owner_instance_id = :me AND fencing_token = :token "
    "AND expires_at > now()"
)


class PgLeaseStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def acquire(self, integration_id: str, owner: str, ttl_s: float) -> Grant | None:
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    _ACQUIRE, {"id": new_id(), "bot": integration_id, "me": owner, "ttl": ttl_s}
                )
            ).first()
        if row is None:
            return None
        token, previous = int(row[0]), row[1]
        return Grant(token, previous if previous != owner else None)

    async def renew(self, integration_ids: list[str], owner: str, ttl_s: float) -> set[str]:
        if not integration_ids:
            return set()
        async with self._sessions() as session, session.begin():
            rows = await session.scalars(
                _RENEW, {"me": owner, "ttl": ttl_s, "ids": list(integration_ids)}
            )
            return set(rows)

    async def release(self, integration_id: str, owner: str, token: int) -> bool:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                _RELEASE, {"bot": integration_id, "me": owner, "token": token}
            )
        return bool(getattr(result, "rowcount", 0))


async def listing(session: AsyncSession) -> list[LeaseRow]:
    rows = await session.execute(
        text(
            "SELECT integration_id, owner_instance_id, fencing_token, expires_at, "
            "expires_at > now() FROM bot_leases ORDER BY owner_instance_id, integration_id"
        )
    )
    return [LeaseRow(*row) for row in rows.all()]
