"""Run Alembic migrations programmatically (on start, and from `rudder db upgrade`).

Alembic is imported only when there is something to do: a start on a database already at head
reads `alembic_version` with one query and compares it with the newest revision named in the
migration files (importing Alembic alone costs about a tenth of a second of every start).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision(?:: [^=]+)? = "([^"]+)"', re.MULTILINE)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The one revision no other revision builds on (None if the files don't say one clearly:
    then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found is None:
            return None
        revisions.add(found.group(1))
        parents.update(_DOWN.findall(source))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def at_head(engine: AsyncEngine) -> bool:
    head = head_revision()
    if head is None:
        return False
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no alembic_version table yet: a new database
        return False
    return [row[0] for row in rows] == [head]


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _pending(connection: Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    current = MigrationContext.configure(connection).get_current_heads()
    head = script.get_current_head()
    if head is None or head in current:
        return []
    return [rev.revision for rev in script.iterate_revisions(head, current[0] if current else None)]


def revisions() -> list[str]:
    """Every revision, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def pending_migrations(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_pending)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await at_head(engine):
        return

    def _run(connection: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


def drop_columns(table: str, *columns: str) -> None:
    """Drop columns in a migration's downgrade without copying the table.

    On SQLite, Alembic's batch mode drops a column by copying the table and dropping the old
    one; with foreign keys on, that drop deletes every row referencing the table (runs of an
    agent, members of an organization). SQLite ≥ 3.35 drops a plain column in place instead.
    """
    from alembic import op

    for column in columns:
        if op.get_context().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        else:
            op.drop_column(table, column)
