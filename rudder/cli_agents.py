"""`rudder agent check NAME`: is this agent's runtime ready to answer, on this machine?

Prints one row per check (config, binary and version, login, working directory, secrets, test
run) and exits 1 when any check fails, so it also works in scripts and provisioning.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.config import Settings
from rudder.db.models import Agent, Organization
from rudder.runtimes.base import ChatMessage, RunContext, RuntimeError_
from rudder.runtimes.envcheck import (
    DRY_RUN_PROMPT,
    EnvReport,
    Level,
    check_environment,
    is_offline_example,
)

console = Console()

_STYLE = {Level.PASS: "green", Level.WARN: "yellow", Level.FAIL: "red", Level.SKIP: "dim"}
_MARK = {Level.PASS: "✓", Level.WARN: "!", Level.FAIL: "✗", Level.SKIP: "–"}


class AgentNotFound(LookupError):
    pass


async def find_agent(session: AsyncSession, name: str, org: str | None = None) -> Agent:
    """An agent by name or id; `org` (slug, id or name) narrows it when names repeat."""
    query = select(Agent).where((Agent.name == name) | (Agent.id == name))
    if org:
        query = query.join(Organization, Organization.id == Agent.org_id).where(
            (Organization.slug == org) | (Organization.id == org) | (Organization.name == org)
        )
    found = list(await session.scalars(query))
    if not found:
        raise AgentNotFound(f"no agent {name!r}" + (f" in {org!r}" if org else ""))
    if len(found) > 1:
        raise AgentNotFound(f"{len(found)} agents are called {name!r}; name one with --org")
    return found[0]


async def check_agent(
    session: AsyncSession, settings: Settings, agent: Agent, *, run: bool | None = None
) -> EnvReport:
    """The environment check of `agent`'s runtime. `run=None` runs the test prompt only when
    that is free (the bundled example agent); True always; False never."""
    from rudder.domain import secret_store
    from rudder.domain.secrets import load_secret_box

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    box = load_secret_box(settings.home_dir, key)

    async def resolve(name: str) -> str:
        try:
            return await secret_store.get_secret_value(session, box, agent.org_id, name)
        except Exception as exc:
            raise RuntimeError_(f"secret {name!r} is not available: {exc}") from None

    config = dict(agent.runtime_config or {})
    if run is None:
        run = is_offline_example(agent.runtime_type, config)
    ctx = None
    if run:
        ctx = RunContext(
            run_id=f"check-{secrets.token_hex(6)}",
            agent_id=agent.id,
            agent_name=agent.name,
            conversation_id=f"check-{secrets.token_hex(6)}",
            messages=[ChatMessage("user", DRY_RUN_PROMPT)],
            runtime_config=config,
            instructions=agent.instructions,
            resolve_secret=resolve,
        )
    return await check_environment(agent.runtime_type, config, resolve, dry_run=ctx)


def print_report(agent_name: str, report: EnvReport) -> None:
    table = Table(
        "check", "", "result", "what to do", title=f"{agent_name} ({report.runtime_type})"
    )
    for check in report.checks:
        style = _STYLE[check.level]
        table.add_row(
            check.name,
            f"[{style}]{_MARK[check.level]}[/]",
            f"[{style}]{check.message}[/]",
            check.hint or "",
        )
    console.print(table)
    verdict = {
        Level.PASS: "[green]ready[/]",
        Level.WARN: "[yellow]ready, with warnings[/]",
        Level.FAIL: "[red]not ready[/]",
    }[report.status]
    console.print(f"{agent_name}: {verdict}")


def agent_check(
    name: Annotated[str, typer.Argument(help="The agent's name or id.")],
    org: Annotated[str | None, typer.Option(help="Organization slug, id or name.")] = None,
    run: Annotated[
        bool | None,
        typer.Option(
            "--run/--no-run",
            help="Send a one-line test prompt (may spend tokens). "
            "Default: only for the bundled example agent.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check an agent's runtime environment: binary, version, login, directory, secrets."""
    from rudder.cli_common import with_session

    settings = Settings()

    async def go(session: AsyncSession) -> tuple[str, EnvReport]:
        agent = await find_agent(session, name, org)
        return agent.name, await check_agent(session, settings, agent, run=run)

    try:
        agent_name, report = asyncio.run(with_session(go))
    except AgentNotFound as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if as_json:
        out: dict[str, Any] = {"agent": agent_name, **report.as_dict()}
        print(json.dumps(out, indent=2))
    else:
        print_report(agent_name, report)
    if report.status is Level.FAIL:
        raise typer.Exit(1)


def register(agent_app: typer.Typer) -> None:
    """Adds `check`, `edit`, `pause`, `resume`, `archive` and `revisions` to `rudder agent`."""
    from rudder import cli_agent_edit

    agent_app.command("check")(agent_check)
    cli_agent_edit.register(agent_app)
