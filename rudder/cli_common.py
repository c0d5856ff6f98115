"""What the `rudder` subcommands share: the console, a database session, picking an organization."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from rudder.config import Settings, ensure_home

console = Console()


async def with_session(fn: Any) -> Any:
    from rudder.db import migrate
    from rudder.db.engine import create_nullpool_engine, session_factory
    from rudder.domain import orgs

    settings = Settings()
    ensure_home(settings.home_dir)
    engine = create_nullpool_engine(settings.effective_database_url)
    try:
        await migrate.upgrade(engine)
        async with session_factory(engine)() as session, session.begin():
            await orgs.bootstrap(session)
            return await fn(session)
    finally:
        await engine.dispose()


async def pick_org(session: Any, org: str | None) -> Any:
    from sqlalchemy import select

    from rudder.db.models import Organization

    query = select(Organization).order_by(Organization.created_at)
    if org:
        query = query.where(
            (Organization.slug == org) | (Organization.id == org) | (Organization.name == org)
        )
    found = (await session.scalars(query)).first()
    if found is None:
        console.print(f"[red]No organization {org!r}.[/]")
        raise typer.Exit(2)
    return found
