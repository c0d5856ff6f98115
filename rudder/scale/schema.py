"""Database set-up that several processes may attempt at once (they start together)."""

from __future__ import annotations

from typing import Any

from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from rudder.db import migrate

# pg_advisory_lock keys: only for serialising start-up work between Rudder processes.
_MIGRATE_LOCK = 0x52_55_44_44_02


async def upgrade_serialized(engine: AsyncEngine) -> None:
    """Alembic upgrade plus procrastinate's schema, one process at a time.

    Two instances migrating a fresh database together would both try to create the same
    tables; the second one waits here and then finds nothing left to do.
    """
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATE_LOCK})
        await conn.commit()
        try:
            await migrate.upgrade(engine)
            present = await conn.scalar(text("SELECT to_regclass('procrastinate_jobs')"))
            if present is None:
                # The raw driver: the schema is many statements and holds literal `%` signs.
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.execute(SchemaManager.get_schema())
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATE_LOCK})
            await conn.commit()
