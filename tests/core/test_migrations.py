"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rudder.db import migrate
from rudder.db.engine import create_engine
from rudder.db.models import Base


async def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate.upgrade(engine)

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        # procrastinate's own tables (PostgreSQL scale-out) are not ours to describe.
        ours = [d for d in differences if "procrastinate" not in repr(d)]
        assert ours == [], ours
        assert await migrate.pending_migrations(engine) == []
    finally:
        await engine.dispose()
