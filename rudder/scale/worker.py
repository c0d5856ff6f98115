"""`rudder worker`: a process that only executes runs from the shared queue.

It holds what a run needs (database, secrets key, runtimes, the Feishu outbox for replies,
live fan-out so browsers on any instance watch the run) and no web server, bots or inbox.
"""

from __future__ import annotations

import asyncio

import httpx

from rudder.config import Settings
from rudder.db.engine import create_engine, session_factory
from rudder.domain.secrets import load_secret_box
from rudder.live import LiveHub
from rudder.scale import node as scale_node
from rudder.scale.schema import upgrade_serialized
from rudder.services import Services


async def serve(settings: Settings, concurrency: int, stop: asyncio.Event) -> None:
    if settings.is_sqlite:
        raise RuntimeError("rudder worker needs PostgreSQL (set DATABASE_URL)")
    engine = create_engine(settings.effective_database_url)
    await upgrade_serialized(engine)
    sessions = session_factory(engine)
    box = load_secret_box(
        settings.home_dir, settings.secrets_key.get_secret_value() if settings.secrets_key else None
    )
    live = LiveHub()
    node = scale_node.create(settings, sessions, live, box)
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0), trust_env=False)
    services = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        live=live,
        runs=node.runs,
        http=http,
    )
    node.attach(services, serve_bots=False)
    from rudder.feishu import outbound as feishu_outbound

    try:
        await node.open()
        feishu_outbound.install(services)
        await node.runs.recover()
        await node.runs.start_worker(concurrency, name=f"worker-{node.instance_id}")
        await stop.wait()
    finally:
        await feishu_outbound.shutdown(services)
        await node.runs.close()
        await node.close()
        await http.aclose()
        await engine.dispose()
