"""The application factory, its lifespan, and running it under uvicorn from our own loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

from rudder import __version__
from rudder.config import Settings, ensure_home
from rudder.db import migrate
from rudder.db.engine import create_engine, session_factory
from rudder.domain import orgs
from rudder.domain.secrets import load_secret_box
from rudder.executor import InProcessRunQueue
from rudder.live import LiveHub
from rudder.media.config import media_config
from rudder.runtimes.policy import RuntimePolicy
from rudder.services import Services

log = logging.getLogger(__name__)

ServicesHook = Callable[[Services], None]


async def start_services(settings: Settings) -> Services:
    ensure_home(settings.home_dir)
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    node = None
    if settings.is_sqlite:
        await migrate.upgrade(engine)
    else:
        from rudder.scale.schema import upgrade_serialized

        await upgrade_serialized(engine)
    async with sessions() as session, session.begin():
        await orgs.bootstrap(session)
    box = load_secret_box(
        settings.home_dir, settings.secrets_key.get_secret_value() if settings.secrets_key else None
    )
    live = LiveHub()
    runs: InProcessRunQueue
    if settings.is_sqlite:
        runs = InProcessRunQueue(sessions, live, box)
    else:
        # PostgreSQL: several instances and workers share bots, runs and live updates.
        from rudder.scale import node as scale_node

        node = scale_node.create(settings, sessions, live, box)
        runs = node.runs
    runs.policy = RuntimePolicy.from_settings(settings)
    runs.media = media_config(settings, sessions)
    # One pooled client for every outgoing call (Feishu, Lark, the sandbox). No env proxies:
    # Feishu traffic must not silently detour through a developer's HTTP_PROXY.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(15.0, connect=5.0),
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    services = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        live=live,
        runs=runs,
        http=http,
    )
    if node is not None:
        node.attach(services, serve_bots=True)
        await node.open()
    from rudder.feishu import outbound as feishu_outbound

    # Before runs are recovered, so re-queued Feishu runs are watched from their first token.
    feishu_outbound.install(services)
    await runs.recover()
    from rudder import agent_control

    agent_control.start_sweeper(services)  # budgets: a new month resumes held agents
    from rudder.media import retention as media_retention

    media_retention.start(services)  # RUDDER_MEDIA_RETENTION_DAYS
    from rudder.feishu import setup as feishu_setup

    await feishu_setup.poller(services).resume()
    from rudder.feishu.inbound import pipeline
    from rudder.feishu.supervisor import Supervisor

    inbound = pipeline(services)
    gate = node.coordinator if node is not None else None
    supervisor = services.components.supervisor = Supervisor(services, inbound, gate=gate)
    await supervisor.start()
    if node is None or gate is None:
        await inbound.recover()
        if settings.is_sqlite:
            from rudder import sweeper

            sweeper.install(services)
        return services
    cold = await node.join(sessions)
    await gate.start(supervisor, partial(_recover_bot_events, services), cold=cold)
    if cold:
        # Nobody else is alive to be routing these; with peers alive, a takeover recovers
        # the events of the bots it takes from a dead instance instead.
        await inbound.recover()
    await node.runs.start_worker(node.config.instance_runs, name=f"instance-{node.instance_id}")
    from rudder import sweeper

    sweeper.install(services)  # replies and events stranded while every process lives
    return services


async def _recover_bot_events(services: Services, integration_id: str) -> None:
    """Events of one bot recorded (and acked) but never finished: its holder died.

    As in `InboundPipeline.recover`: a message already posted (outcomes are written in
    batches, so the holder may have died before writing it) is not routed a second time.
    """
    from sqlalchemy import select

    from rudder.db.models import InboundEvent as InboundRow
    from rudder.db.models import Message
    from rudder.feishu.inbound import pipeline

    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(InboundRow.id, InboundRow.chat_id, InboundRow.message_id)
                .where(
                    InboundRow.integration_id == integration_id, InboundRow.outcome == "received"
                )
                .order_by(InboundRow.received_at)
            )
        ).all()
        message_ids = [r.message_id for r in rows if r.message_id]
        posted = (
            set(
                await session.scalars(
                    select(Message.external_message_id).where(
                        Message.external_message_id.in_(message_ids)
                    )
                )
            )
            if message_ids
            else set()
        )
    inbound = pipeline(services)
    for row_id, chat_id, message_id in rows:
        if message_id in posted:
            await inbound.writer.set_outcome(
                row_id, "processed", "message was posted before its instance died"
            )
            continue
        # The same chat key as the pipeline's own, so they queue behind that chat's events.
        chat = f"{integration_id}:{chat_id}" if chat_id else f"event:{row_id}"
        inbound.schedule(row_id, chat, integration_id)


async def stop_services(services: Services) -> None:
    from rudder import agent_control, sweeper
    from rudder.feishu import setup as feishu_setup
    from rudder.feishu.inbound import pipeline
    from rudder.feishu.supervisor import supervisor

    await agent_control.stop_sweeper(services)
    await sweeper.shutdown(services)
    from rudder.media import retention as media_retention

    await media_retention.stop(services)
    node = None
    if not services.settings.is_sqlite:
        from rudder.scale.node import node_of

        node = node_of(services)
    if node is not None:
        await node.close_bots()
    sup = supervisor(services)
    if sup is not None:
        await sup.close()
    await pipeline(services).close()
    await feishu_setup.shutdown(services)
    from rudder.feishu import outbound as feishu_outbound

    await feishu_outbound.shutdown(services)
    await services.runs.close()
    if node is not None:
        await node.close()
    await services.http.aclose()
    await services.engine.dispose()


def create_app(
    settings: Settings | None = None, *, on_start: ServicesHook | None = None
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await start_services(settings)
        app.state.services = services
        app.state.example_agent_name = await orgs.example_agent_name(services.sessions)
        if on_start is not None:
            on_start(services)
        try:
            yield
        finally:
            await stop_services(services)

    app = FastAPI(
        title="Rudder",
        version=__version__,
        description="The operating layer for agent teams; every agent can own one Feishu or Lark bot.",
        lifespan=lifespan,
        # /docs is served from files in the package (rudder.web.pages_docs): it must work offline.
        docs_url=None,
        redoc_url=None,
    )
    session_secret = (
        settings.session_secret.get_secret_value()
        if settings.session_secret
        else _session_secret(settings)
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        same_site="lax",
        # Behind HTTPS the session cookie is marked Secure.
        https_only=settings.effective_public_url.startswith("https://"),
    )

    from rudder.api import (
        errors,
        routes_agents,
        routes_chat_policy,
        routes_conversations,
        routes_feishu,
        routes_feishu_inbound,
        routes_feishu_messages,
        routes_media,
        routes_orgs,
        routes_runs,
    )
    from rudder.web import routes as web_routes

    errors.install(app)
    from rudder import security
    from rudder.api import routes_auth

    security.install(app, settings)  # CSRF (origin) checks and the sign-in redirect for pages
    from rudder.http_limits import BodyLimit

    app.add_middleware(BodyLimit)  # outside the checks above: nothing reads an oversized body
    app.include_router(routes_auth.router)
    app.include_router(routes_orgs.router)
    app.include_router(routes_agents.router)
    app.include_router(routes_conversations.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_media.router)
    app.include_router(routes_feishu.router)
    app.include_router(routes_feishu_inbound.router)
    app.include_router(routes_feishu_messages.router)
    app.include_router(routes_chat_policy.router)
    app.include_router(routes_feishu_inbound.pages)
    app.include_router(web_routes.router)
    from rudder.web.headers import SecurityHeaders  # CSP, nosniff, Referrer-Policy, no framing

    app.add_middleware(SecurityHeaders)  # last added: outermost, so every answer carries them
    return app


def _session_secret(settings: Settings) -> str:
    path = settings.home_dir / "session.key"
    ensure_home(settings.home_dir)
    if not path.exists():
        import os
        import secrets

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class _Server(uvicorn.Server):
    """uvicorn's server, ending live streams first so that a graceful shutdown can finish."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(getattr(self._app, "state", None), "services", None)
        if services is not None:
            services.live.end_streams()
        await super().shutdown(sockets)


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound listening socket (port 0 picks a free one); raises OSError when it is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class RunningServer:
    """Serve an ASGI app on a real socket (port 0 picks a free one) until the context exits."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        *,
        sock: socket.socket | None = None,
    ) -> None:
        self._sock = sock if sock is not None else bind_listener(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        from rudder.http_limits import uvicorn_options

        config = uvicorn.Config(
            app,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=5,
            **uvicorn_options(),  # header cap, read deadlines (slowloris)
        )
        self.server = _Server(config, app)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self._sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._sock.close()

    async def __aenter__(self) -> RunningServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
