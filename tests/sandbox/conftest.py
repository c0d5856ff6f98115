"""Fixtures: a real sandbox on loopback (port 0) and a client for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

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
