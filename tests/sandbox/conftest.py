"""Fixtures: a real sandbox on loopback (port 0) and a client for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox import SandboxServer

CONTROL = "/_sandbox/api"


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not (result := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return result


@dataclass
class SandboxHarness:
    server: SandboxServer
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.server.url

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, CONTROL + path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def create_app(self, name: str = "Test Bot", brand: str = "feishu") -> dict[str, Any]:
        result: dict[str, Any] = await self.control(
            "POST", "/apps", json={"name": name, "brand": brand}
        )
        return result

    async def create_user(self, name: str = "Tom") -> str:
        return str((await self.control("POST", "/users", json={"name": name}))["user_id"])

    async def p2p(self, user_id: str, app_id: str) -> str:
        body = {"type": "p2p", "user_ids": [user_id], "app_ids": [app_id]}
        return str((await self.control("POST", "/chats", json=body))["chat_id"])

    async def token(self, app: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        response = await self.http.post(
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": app["app_id"], "app_secret": app["app_secret"]},
            headers=headers,
        )
        body = response.json()
        assert body["code"] == 0, body
        return str(body["tenant_access_token"])


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHarness]:
    async with (
        SandboxServer() as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield SandboxHarness(server=server, http=http)


class SdkWebhook:
    """A developer's webhook server: lark-oapi's EventDispatcherHandler behind Starlette."""

    def __init__(self, encrypt_key: str, token: str) -> None:
        import lark_oapi as lark
        from lark_oapi.event.callback.model.p2_card_action_trigger import (
            P2CardActionTrigger,
            P2CardActionTriggerResponse,
        )

        self.seen: list[P2CardActionTrigger] = []
        self.delay_s = 0.0

        def on_card(data: P2CardActionTrigger) -> P2CardActionTriggerResponse:
            self.seen.append(data)
            time.sleep(self.delay_s)
            value = data.event.action.value
            card = {
                "schema": "2.0",
                "body": {"elements": [{"tag": "markdown", "content": "stopped"}]},
            }
            return P2CardActionTriggerResponse(
                {
                    "toast": {"type": "info", "content": f"stopping run {value['run']}"},
                    "card": {"type": "raw", "data": card},
                }
            )

        self.handler = (
            lark.EventDispatcherHandler.builder(encrypt_key, token)
            .register_p2_card_action_trigger(on_card)
            .register_p2_im_message_receive_v1(lambda data: None)  # messages are acked only
            .build()
        )

    async def handle(self, request: Request) -> Response:
        from lark_oapi.core.model import RawRequest

        raw = RawRequest()
        raw.uri = request.url.path
        raw.body = await request.body()
        raw.headers = {k.title(): v for k, v in request.headers.items()}
        answer = await asyncio.to_thread(self.handler.do, raw)
        return Response(
            answer.content, status_code=answer.status_code, media_type="application/json"
        )


@pytest.fixture
async def webhook_app(sandbox: SandboxHarness) -> AsyncIterator[tuple[dict[str, Any], SdkWebhook]]:
    app = await sandbox.create_app()
    hook = SdkWebhook(app["encrypt_key"], app["verification_token"])
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])]),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    view = await sandbox.control(
        "PATCH",
        f"/apps/{app['app_id']}",
        json={"event_delivery": "webhook", "webhook_url": f"http://127.0.0.1:{port}/hook"},
    )
    assert view["url_verification"]["ok"], view
    yield app, hook
    server.should_exit = True
    await asyncio.wait_for(task, 5)
