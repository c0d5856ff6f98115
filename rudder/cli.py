"""The `rudder` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from rudder import cli_scale, texts
from rudder.cli_agents import register as register_agent_check
from rudder.cli_common import console, pick_org, with_session
from rudder.cli_feishu import feishu_app
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
app.add_typer(feishu_app, name="feishu")


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
        int | None, typer.Option(help="Port to listen on (0: any free port).", show_default="3100")
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
    if host is not None:
        overrides["host"] = host
    if port is not None:  # 0: any free port
        overrides["port"] = port
    settings = Settings(**overrides)
    from rudder.config import DeploymentMode
    from rudder.security import is_loopback_host

    if settings.deployment_mode is DeploymentMode.LOCAL and not is_loopback_host(settings.host):
        # Local mode has no sign-in: on another interface, the network would own this Rudder.
        typer.echo(
            texts.LOCAL_MODE_NOT_LOOPBACK.format(host=settings.host or "every interface"), err=True
        )
        raise typer.Exit(2)
    if not settings.public_url and not is_loopback_host(settings.host):
        console.print(
            f"[yellow]{texts.PUBLIC_URL_UNSET.format(url=settings.effective_public_url)}[/]"
        )
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
        f"[bold green]Rudder is running on {url}.[/] Open [bold]{browse}[/] in your browser"
        "  (Ctrl+C to stop)",
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


@agent_app.command("list")
def agent_list(
    org: Annotated[str | None, typer.Option(help="Organization slug, id or name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the agents of an organization."""
    from rudder.domain import agents

    async def run(session: Any) -> list[dict[str, Any]]:
        found = await pick_org(session, org)
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

    rows = asyncio.run(with_session(run))
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
    title: Annotated[str | None, typer.Option(help="Job title.")] = None,
    capabilities: Annotated[str | None, typer.Option(help="What the agent can do.")] = None,
    instructions: Annotated[str | None, typer.Option(help="The agent's instructions.")] = None,
    skill: Annotated[list[str] | None, typer.Option(help="An enabled skill (repeat).")] = None,
    budget: Annotated[float, typer.Option(help="Monthly budget in US dollars (0: none).")] = 0,
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
        found = await pick_org(session, org)
        return await agents.create_agent(
            session,
            found.id,
            name=name,
            runtime_type=runtime,
            runtime_config=runtime_config,
            role=role,
            title=title,
            capabilities=capabilities,
            instructions=instructions,
            skills=list(skill or []),
            budget_monthly_cents=round(budget * 100),
            actor="cli",
            policy=RuntimePolicy.from_settings(Settings()),
        )

    try:
        agent = asyncio.run(with_session(run))
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(2) from None
    console.print(f"[green]✓[/] created agent {agent.name} ({agent.id})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
