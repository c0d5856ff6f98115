"""The `rudder` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rudder import cli_scale
from rudder.cli_agents import register as register_agent_check
from rudder.cli_secrets import secrets_app
from rudder.cli_users import users_app
from rudder.config import Settings, ensure_home

app = typer.Typer(help="Rudder: the operating layer for agent teams.", no_args_is_help=True)
agent_app = typer.Typer(help="Manage agents.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
register_agent_check(agent_app)
app.add_typer(users_app, name="user")
app.add_typer(secrets_app, name="secrets")
app.command()(cli_scale.worker)
app.command()(cli_scale.status)
app.add_typer(db_app, name="db")
feishu_app = typer.Typer(help="Feishu / Lark bots of agents.", no_args_is_help=True)
app.add_typer(feishu_app, name="feishu")
console = Console()


# Libraries that log every request at INFO: one line per Feishu call (including the expected
# "400" of each registration poll while a person has not approved yet) drowns the console.
_CHATTY_LOGGERS = ("httpx", "httpcore", "alembic", "websockets", "procrastinate", "uvicorn.error")


def _setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    level = os.environ.get("RUDDER_LOG_LEVEL", "DEBUG" if verbose else "INFO").upper()
    if logging.getLevelName(level) not in range(0, 100):
        console.print(
            f"[yellow]RUDDER_LOG_LEVEL={level!r} is not a log level[/] "
            "(use DEBUG, INFO, WARNING or ERROR); using INFO."
        )
        level = "INFO"
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
    if not verbose and level != "DEBUG":
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


async def _migrate(settings: Settings) -> None:
    from rudder.db import migrate
    from rudder.db.engine import create_nullpool_engine

    ensure_home(settings.home_dir)
    engine = create_nullpool_engine(settings.effective_database_url)
    try:
        pending = await migrate.pending_migrations(engine)
        if pending:
            with console.status(f"Applying {len(pending)} database migration(s)…"):
                if settings.is_sqlite:
                    await migrate.upgrade(engine)
                else:
                    # Several instances may start at once on one database: serialise them.
                    from rudder.scale.schema import upgrade_serialized

                    await upgrade_serialized(engine)
            console.print(f"[green]✓[/] database migrated ({len(pending)} step(s))")
        else:
            console.print("[green]✓[/] database is up to date")
    finally:
        await engine.dispose()


def _describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"SQLite at {settings.home_dir / 'rudder.db'}"
    url = settings.effective_database_url
    return "PostgreSQL at " + url.split("@")[-1]


@app.command()
def start(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on.", show_default="127.0.0.1")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on.", show_default="3100")
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Also start the offline Feishu/Lark sandbox and use it."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log every request and Feishu call (RUDDER_LOG_LEVEL)."
        ),
    ] = False,
) -> None:
    """Run Rudder (web UI, API, bots and runs in one process)."""
    _setup_logging(verbose)
    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = Settings(**overrides)
    listener = _bind_or_exit(settings.host, settings.port)
    try:
        asyncio.run(_start(settings, sandbox, listener))
    except KeyboardInterrupt:
        pass


def _bind_or_exit(host: str, port: int) -> Any:
    """Bind before anything else starts, so a taken port is one clear line, not a traceback."""
    from rudder.server import bind_listener

    try:
        return bind_listener(host, port)
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            console.print(
                f"[red]Port {port} on {host} is already in use[/] — is Rudder already running? "
                f"Stop it, or start on another port: rudder start --port {port + 1}"
            )
        else:
            console.print(f"[red]Cannot listen on {host}:{port}:[/] {exc.strerror or exc}")
        raise typer.Exit(1) from None


async def _start(settings: Settings, with_sandbox: bool, listener: Any) -> None:
    from rudder.server import RunningServer, create_app

    console.print(f"Rudder {_version()}", highlight=False)
    console.print(f"  home      {settings.home_dir}", soft_wrap=True, highlight=False)
    console.print(f"  database  {_describe_db(settings)}", soft_wrap=True, highlight=False)
    await _migrate(settings)
    sandbox_server = None
    if with_sandbox:
        from rudder.sandbox import SandboxServer

        sandbox_server = SandboxServer()
        await sandbox_server.__aenter__()
        settings.feishu_base_url = sandbox_server.url
    app = create_app(settings)
    server = RunningServer(app, sock=listener, log_level="warning")
    try:
        await server.start()
        _print_first_steps(settings, server.url, app, sandbox_server)
        while not server.server.should_exit:
            await asyncio.sleep(0.2)
    finally:
        await server.stop()
        if sandbox_server is not None:
            await sandbox_server.__aexit__(None, None, None)


def _version() -> str:
    from rudder import __version__

    return __version__


def _print_first_steps(settings: Settings, url: str, app: Any, sandbox_server: Any) -> None:
    """The console is the newcomer's guide: where to go and what to try next."""
    from rudder import texts

    browse = (settings.public_url or url).rstrip("/")
    console.print(
        f"[bold green]Rudder is running.[/] Open [bold]{browse}[/] in your browser  (Ctrl+C to stop)",
        soft_wrap=True,
    )
    steps = Table.grid(padding=(0, 1))
    steps.add_column(no_wrap=True)
    steps.add_column()
    example = getattr(app.state, "example_agent_name", None)
    if example:
        steps.add_row("  ·", texts.CONSOLE_TRY_EXAMPLE.format(agent=example))
    if sandbox_server is not None:
        steps.add_row("  ·", texts.CONSOLE_SANDBOX_ON.format(url=sandbox_server.url + "/_sandbox/"))
    elif not settings.feishu_base_url:
        steps.add_row("  ·", texts.CONSOLE_SANDBOX_HINT)
    steps.add_row("  ·", texts.CONSOLE_DOCS.format(url=browse + "/docs"))
    console.print(steps, highlight=False)


@app.command()
def sandbox(port: Annotated[int, typer.Option(help="Port to listen on.")] = 3200) -> None:
    """Run the offline Feishu/Lark Open Platform sandbox on its own."""
    _setup_logging()
    from rudder.sandbox import serve_sandbox

    console.print(f"Feishu/Lark sandbox on http://127.0.0.1:{port}/_sandbox/  (Ctrl+C to stop)")
    try:
        asyncio.run(serve_sandbox("127.0.0.1", port))
    except KeyboardInterrupt:
        pass


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations."""
    settings = Settings()
    console.print(f"database: {_describe_db(settings)}")
    asyncio.run(_migrate(settings))


async def _with_session(fn: Any) -> Any:
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


async def _pick_org(session: Any, org: str | None) -> Any:
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


@agent_app.command("list")
def agent_list(
    org: Annotated[str | None, typer.Option(help="Organization slug, id or name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the agents of an organization."""
    from rudder.domain import agents

    async def run(session: Any) -> list[dict[str, Any]]:
        found = await _pick_org(session, org)
        return [
            {
                "id": a.id,
                "name": a.name,
                "role": a.role,
                "runtime_type": a.runtime_type,
                "status": a.status,
            }
            for a in await agents.list_agents(session, found.id)
        ]

    rows = asyncio.run(_with_session(run))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "role", "runtime", "status", "id")
    # Ids are for copying: never cut them to fit the terminal.
    table.columns[-1].no_wrap, table.columns[-1].min_width = True, 32
    for row in rows:
        table.add_row(row["name"], row["role"], row["runtime_type"], row["status"], row["id"])
    console.print(table)


@agent_app.command("create")
def agent_create(
    name: Annotated[str, typer.Argument(help="The agent's name (also its Feishu bot name).")],
    runtime: Annotated[str, typer.Option(help="Runtime type.")] = "process",
    config: Annotated[str, typer.Option(help="Runtime configuration as JSON.")] = "",
    role: Annotated[str, typer.Option(help="The agent's role.")] = "general",
    org: Annotated[str | None, typer.Option(help="Organization slug, id or name.")] = None,
) -> None:
    """Create an agent."""
    from rudder.domain import agents
    from rudder.domain.errors import DomainError
    from rudder.runtimes import DEFAULT_AGENT_RUNTIME
    from rudder.runtimes.policy import RuntimePolicy

    try:
        runtime_config = (
            json.loads(config)
            if config
            else (dict(DEFAULT_AGENT_RUNTIME[1]) if runtime == DEFAULT_AGENT_RUNTIME[0] else {})
        )
    except json.JSONDecodeError as exc:
        console.print(f"[red]--config is not valid JSON:[/] {exc}")
        raise typer.Exit(2) from None

    async def run(session: Any) -> Any:
        found = await _pick_org(session, org)
        return await agents.create_agent(
            session,
            found.id,
            name=name,
            runtime_type=runtime,
            runtime_config=runtime_config,
            role=role,
            actor="cli",
            policy=RuntimePolicy.from_settings(Settings()),
        )

    try:
        agent = asyncio.run(_with_session(run))
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(2) from None
    console.print(f"[green]✓[/] created agent {agent.name} ({agent.id})")


@feishu_app.command("connect")
def feishu_connect(
    agent: Annotated[str, typer.Option(help="The agent's name (or id).")],
    region: Annotated[
        str, typer.Option(help="feishu (Feishu CN) or lark (Lark Global).")
    ] = "feishu",
    url: Annotated[
        str | None, typer.Option(help="Rudder's address; default RUDDER_PUBLIC_URL.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="RUDDER_API_TOKEN", help="API token (authenticated mode).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the approval.")] = 600,
) -> None:
    """Connect an agent to its own Feishu or Lark bot: prints the link and a QR code, waits."""
    import time

    import httpx

    if region not in ("feishu", "lark"):
        console.print("[red]--region must be 'feishu' (Feishu CN) or 'lark' (Lark Global)[/]")
        raise typer.Exit(2)
    base = (url or Settings().effective_public_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=20, trust_env=False) as client:
        try:
            orgs_ = client.get("/api/orgs").raise_for_status().json()
        except httpx.HTTPError as exc:
            console.print(
                f"[red]Cannot reach Rudder at {base}:[/] {exc}. Is `rudder start` running?"
            )
            raise typer.Exit(2) from None
        found = None
        for org in orgs_:
            for a in client.get(f"/api/orgs/{org['id']}/agents").json():
                if agent in (a["name"], a["id"]):
                    found = a
        if found is None:
            console.print(f"[red]No agent named {agent!r}.[/]")
            raise typer.Exit(2)
        r = client.post(
            f"/api/agents/{found['id']}/integrations/feishu/setup", json={"region": region}
        )
        if r.status_code >= 400:
            console.print(f"[red]{r.json().get('detail')}[/]")
            raise typer.Exit(1)
        setup = r.json()
        product = "Feishu CN" if region == "feishu" else "Lark Global"
        console.print(
            f"Open this link in {product} (or scan the code) and approve the app for [bold]{found['name']}[/]:"
        )
        console.print(setup["verification_url"], soft_wrap=True)
        from rudder.web.pages_connect import short_setup_link
        from rudder.web.qr import qr_text

        short = short_setup_link(base, setup["setup_id"])
        print(qr_text(short), end="")
        console.print(f"(the code opens {short}, which leads to the link above)", soft_wrap=True)
        deadline = time.monotonic() + timeout
        with console.status("Waiting for the approval…"):
            while time.monotonic() < deadline:
                status = client.get(f"/api/integration-setups/{setup['setup_id']}").json()
                if status["status"] != "pending":
                    break
                time.sleep(1)
        if status["status"] == "connected":
            info = client.get(f"/api/agents/{found['id']}/integrations/feishu").json()
            ended = "Feishu CN" if status.get("connected_region") == "feishu" else "Lark Global"
            console.print(
                f"[green]✓ connected to {ended}[/] — bot {info['bot_name']} ({info['app_id']}) "
                "is listening."
            )
            if status.get("connected_region") not in (None, region):
                console.print(status.get("outcome") or "")
            return
        console.print(f"[red]{status['status']}:[/] {status.get('error') or 'no answer in time'}")
        raise typer.Exit(1)


@feishu_app.command("status")
def feishu_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every agent's bot: region, status, app id, transport, last event, last error."""
    from sqlalchemy import select

    from rudder.db.models import Agent, Integration

    async def run(session: Any) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(Agent, Integration).join(Integration, Integration.agent_id == Agent.id)
        )
        return [
            {
                "agent": a.name,
                "region": i.region,
                "status": i.status,
                "app_id": i.app_id,
                "bot_name": i.bot_name,
                "transport": i.transport,
                "last_event_at": i.last_event_at.isoformat() if i.last_event_at else None,
                "last_error": i.last_error,
            }
            for a, i in rows.all()
        ]

    rows = asyncio.run(_with_session(run))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(
            "No agent has a Feishu or Lark bot yet. Connect one: rudder feishu connect --agent NAME"
        )
        return
    table = Table(
        "agent", "region", "status", "bot", "app id", "transport", "last event", "last error"
    )
    app_id = table.columns[4]
    app_id.no_wrap, app_id.min_width = True, 20  # app ids are for copying: never cut
    for r in rows:
        table.add_row(
            r["agent"],
            r["region"],
            r["status"],
            r["bot_name"] or "",
            r["app_id"] or "",
            r["transport"],
            r["last_event_at"] or "—",
            r["last_error"] or "",
        )
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
