"""Set-up through the public API of one instance and the sandbox's test-control API."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

FINAL = ("succeeded", "failed", "cancelled")
EXAMPLE = {"command": sys.executable, "args": ["-m", "rudder.runtimes.example_agent"]}


@dataclass
class Bot:
    agent_id: str
    integration_id: str
    app_id: str
    user_id: str  # the sandbox person talking to it
    chat_id: str


async def control(sb: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    r = await sb.request(method, "/_sandbox/api" + path, **kw)
    assert r.status_code < 300, r.text
    return r.json()


async def org_and_owner(api: httpx.AsyncClient) -> tuple[str, str]:
    org = (await api.get("/api/orgs")).json()[0]
    members = (await api.get(f"/api/orgs/{org['id']}/members")).json()
    members = members["items"] if isinstance(members, dict) else members
    return org["id"], members[0]["user_id"]


async def connect_bots(api: httpx.AsyncClient, sb: httpx.AsyncClient, n: int) -> list[Bot]:
    """`n` agents, each with its own connected bot and a bound person in a DM with it."""
    org_id, owner = await org_and_owner(api)
    bots = []
    for i in range(n):
        agent = (
            await api.post(
                f"/api/orgs/{org_id}/agents",
                json={"name": f"Agent {i}", "runtime_type": "process", "runtime_config": EXAMPLE},
            )
        ).json()
        app = await control(sb, "POST", "/apps", json={"name": f"Bot {i}", "brand": "feishu"})
        r = await api.post(
            f"/api/agents/{agent['id']}/integrations/feishu/manual",
            json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
        )
        assert r.status_code == 200, r.text
        integration = r.json()
        person = (await control(sb, "POST", "/users", json={"name": f"Person {i}"}))["user_id"]
        users = (await control(sb, "GET", f"/users?app_id={app['app_id']}"))["items"]
        open_id = next(u["open_id"] for u in users if u["user_id"] == person)
        r = await api.post(
            f"/api/orgs/{org_id}/feishu-user-bindings",
            json={"integration_id": integration["id"], "open_id": open_id, "user_id": owner},
        )
        assert r.status_code < 300, r.text
        chat = await control(
            sb,
            "POST",
            "/chats",
            json={"type": "p2p", "user_ids": [person], "app_ids": [app["app_id"]]},
        )
        bots.append(Bot(agent["id"], integration["id"], app["app_id"], person, chat["chat_id"]))
    return bots


async def connections(sb: httpx.AsyncClient, bot: Bot) -> int:
    return len((await control(sb, "GET", f"/apps/{bot.app_id}"))["connections"])


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> float:
    """Seconds it took for `predicate()` to hold."""
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def say(sb: httpx.AsyncClient, bot: Bot, text: str) -> str:
    sent = await control(
        sb, "POST", f"/chats/{bot.chat_id}/messages", json={"user_id": bot.user_id, "text": text}
    )
    message_id: str = sent["message_id"]
    return message_id


async def wait_run(api: httpx.AsyncClient, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
        if run["status"] in FINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")
        await asyncio.sleep(0.05)
