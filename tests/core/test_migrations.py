"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

import httpx
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rudder.config import Settings
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


async def test_every_migration_keeps_the_rows_it_does_not_own(settings: Settings) -> None:
    """Down to the first schema and up again, one step at a time: no row of a table that exists
    at both ends goes missing (a batch "move and copy" of a referenced table on SQLite drops the
    old table, and its foreign keys then delete every row that referenced it)."""
    from sqlalchemy import text

    from rudder.server import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rudder.test") as c:
            org = (await c.get("/api/orgs")).json()[0]
            agent = (await c.get(f"/api/orgs/{org['id']}/agents")).json()[0]
            conv = (
                await c.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
            ).json()
            await c.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hello"})
    engine = create_engine(settings.effective_database_url)

    async def counts() -> dict[str, int]:
        async with engine.connect() as conn:
            names: list[str] = await conn.run_sync(_table_names)
            found = {}
            for name in names:
                if name == "alembic_version" or "procrastinate" in name:
                    continue
                found[name] = (
                    await conn.execute(text(f'SELECT count(*) FROM "{name}"'))
                ).scalar_one()
            return found

    try:
        before = await counts()
        assert before["messages"] >= 1 and before["agents"] >= 1
        revisions = [r for r in migrate.revisions() if r != "0001"]
        for rev in reversed(revisions):
            async with engine.begin() as conn:
                await conn.run_sync(_downgrade_below, rev)
            now = await counts()
            kept = {t: n for t, n in before.items() if t in now}
            assert {t: now[t] for t in kept} == kept, f"downgrading {rev} lost rows"
        for rev in revisions:
            await migrate.upgrade(engine, rev)
            now = await counts()
            assert {t: now[t] for t in now if t in before} == {
                t: before[t] for t in now if t in before
            }, f"upgrading to {rev} lost rows"
    finally:
        await engine.dispose()


def _downgrade_below(connection: Any, revision: str) -> None:
    from alembic import command

    command.downgrade(migrate.alembic_config(connection), f"{revision}-1")


def _table_names(connection: Any) -> list[str]:
    from sqlalchemy import inspect

    return list(inspect(connection).get_table_names())


async def test_a_start_at_head_skips_alembic_and_a_behind_one_does_not(db_url: str) -> None:
    """The quick check (one query, the head read from the files) agrees with Alembic."""
    from alembic import command
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == (
        ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    )
    engine = create_engine(db_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.at_head(engine)

        def one_down(connection: Any) -> None:
            command.downgrade(migrate.alembic_config(connection), "-1")

        async with engine.begin() as conn:
            await conn.run_sync(one_down)
        assert not await migrate.at_head(engine)
        assert await migrate.pending_migrations(engine) == [migrate.head_revision()]
        await migrate.upgrade(engine)  # not skipped: the database is behind
        assert await migrate.at_head(engine) and await migrate.pending_migrations(engine) == []
    finally:
        await engine.dispose()
