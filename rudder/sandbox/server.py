"""The ASGI app and ways to run it: in-process on loopback, or standalone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rudder.sandbox import (
    auth,
    callbacks,
    cardkit,
    contact,
    control,
    control_faults,
    control_media,
    history,
    im,
    longconn,
    page,
    page_extras,
    registration,
    resources,
    slash,
    speech,
)
from rudder.sandbox.core import Sandbox
from rudder.sandbox.envelope import BAD_REQUEST_CODE, HostPrefix, json_response
from rudder.web.headers import SecurityHeaders

DEFAULT_PORT = 3200
log = logging.getLogger("rudder.sandbox")


class _NeverCrash:
    """Answer malformed input the way Feishu does: JSON and a code, never a 500 + traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("sandbox handler failed on %s", scope.get("path"))
            if started:
                raise
            response = json_response(
                {"code": BAD_REQUEST_CODE, "msg": "Bad Request", "data": {}}, 400
            )
            await response(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    msg = (
        "404 page not found"
        if status == 404
        else (exc.detail if isinstance(exc, HTTPException) else "Bad Request")
    )
    return json_response({"code": status, "msg": msg, "data": {}}, status=status)


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for module_routes in (
        auth.routes,
        resources.routes,
        history.routes,
        im.routes,
        contact.routes,
        cardkit.routes,
        slash.routes,
        registration.routes,
        control.routes,
        control_faults.routes,
        control_media.routes,
        speech.routes,
        callbacks.routes,
        page.routes,
        page_extras.routes,
    ):
        routes.extend(module_routes)
    routes.append(Route("/callback/ws/endpoint", longconn.endpoint, methods=["POST"]))
    routes.append(WebSocketRoute("/ws/v2", longconn.websocket_route))
    return routes


def create_sandbox_app(sandbox: Sandbox | None = None) -> Starlette:
    """One ASGI app serving every Feishu/Lark host's paths at its root."""
    state = sandbox or Sandbox()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.aclose()

    app = Starlette(
        routes=_routes(),
        # The people page and the confirm page show text anyone can write: the same CSP as Rudder's.
        middleware=[
            Middleware(SecurityHeaders, docs_paths=frozenset()),
            Middleware(_NeverCrash),
            Middleware(HostPrefix),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app


class SandboxServer:
    """Run the sandbox under uvicorn on loopback (port 0 = any free port) inside this loop.

    ``async with SandboxServer() as server: server.url, server.sandbox``
    """

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        stop_timeout: float = 5.0,
        http: str = "auto",
    ) -> None:
        self.sandbox = sandbox or Sandbox()
        # "h11" keeps header names as the handlers spell them (the resource download spells
        # them as Feishu does, which lark-oapi's download reads case-sensitively); httptools,
        # the default when installed, writes every name in lower case.
        self.http = http
        self.host = host
        self.port = port
        self._stop_timeout = stop_timeout
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            create_sandbox_app(self.sandbox),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            http=self.http,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve())
        while not server.started:
            if self._task.done():
                await self._task  # surface the startup error
                raise RuntimeError("sandbox server exited during startup")
            await asyncio.sleep(0.01)
        sockets = [s for srv in server.servers for s in (srv.sockets or [])]
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        # Close WebSockets first: uvicorn waits for open connections before it exits.
        await self.sandbox.hub.close_all()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self._stop_timeout)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.sandbox.aclose()
        self._server = None
        self._task = None

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_sandbox(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Run the sandbox until cancelled (``rudder sandbox``)."""
    # h11 keeps Feishu's header spelling on downloads for SDKs that read it case-sensitively.
    server = SandboxServer(host=host, port=port, http="h11")
    await server.start()
    log.info("Feishu/Lark sandbox on %s (people page: %s/_sandbox/)", server.url, server.url)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.stop())
