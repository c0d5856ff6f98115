"""`rudder worker` and `rudder status`: operating several processes on one PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rudder.config import Settings

console = Console()


def worker(
    concurrency: Annotated[
        int, typer.Option(help="Runs this worker executes at the same time.")
    ] = 8,
) -> None:
    """Execute agent runs from the shared queue (PostgreSQL only)."""
    import logging
    import os

    from rich.logging import RichHandler

    level = os.environ.get("RUDDER_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
    settings = Settings()
    if settings.is_sqlite:
        console.print("[red]rudder worker needs PostgreSQL:[/] set DATABASE_URL.")
        raise typer.Exit(2)
    asyncio.run(_worker(settings, concurrency))


async def _worker(settings: Settings, concurrency: int) -> None:
    from rudder.scale.worker import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    console.print(f"Rudder worker: up to {concurrency} run(s) at once  (Ctrl+C to stop)")
    await serve(settings, concurrency, stop)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Instances, the bots each one holds, run workers and the run queue."""
    settings = Settings()
    report = asyncio.run(_status(settings))
    if as_json:
        import json

        console.print_json(json.dumps(report, default=str))
        return
    _print(report)


async def _status(settings: Settings) -> dict[str, Any]:
    from sqlalchemy import func, select

    from rudder.db.engine import create_nullpool_engine, session_factory
    from rudder.db.models import Run

    engine = create_nullpool_engine(settings.effective_database_url)
    try:
        async with session_factory(engine)() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Run.status, func.count())
                        .where(Run.status.in_(("queued", "running")))
                        .group_by(Run.status)
                    )
                ).all()
            )
            report: dict[str, Any] = {
                "mode": "single process (SQLite)" if settings.is_sqlite else "PostgreSQL",
                "runs": {"queued": counts.get("queued", 0), "running": counts.get("running", 0)},
            }
            if not settings.is_sqlite:
                from rudder.scale.status import cluster

                report.update(await cluster(session))
        return report
    finally:
        await engine.dispose()


def _age(at: datetime | None) -> str:
    if at is None:
        return "—"
    return f"{(datetime.now(UTC) - at).total_seconds():.1f} s ago"


def _print(report: dict[str, Any]) -> None:
    console.print(f"mode: {report['mode']}")
    runs = report["runs"]
    console.print(f"runs: {runs['queued']} queued, {runs['running']} running")
    if "instances" not in report:
        return
    table = Table("instance", "host", "pid", "heartbeat", "alive", "bots")
    for inst in report["instances"]:
        table.add_row(
            inst["id"][:12],
            inst["hostname"],
            str(inst["pid"]),
            _age(inst["heartbeat_at"]),
            "yes" if inst["alive"] else "no",
            ", ".join(inst["bots"]) or "—",
        )
    console.print(table)
    workers = Table("run worker", "executing", "heartbeat")
    for w in report["workers"]:
        workers.add_row(str(w["id"]), str(w["running"]), _age(w["last_heartbeat"]))
    console.print(workers)
    queue = report["queue"]
    console.print(f"run queue: {queue['todo']} waiting, {queue['doing']} executing")
    if report["unheld_bots"]:
        console.print("bots without a live holder: " + ", ".join(report["unheld_bots"]))
