"""Rudder on a real socket (port 0) in a thread of its own, wired to a sandbox.

Schemathesis calls the API synchronously over HTTP; the server and its sandbox run on their own
event loop in a background thread, as they would in a separate process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from tests.conftest import TEST_SECRETS_KEY


@dataclass
class Live:
    url: str
    sandbox_url: str
    ids: dict[str, str] = field(default_factory=dict)


@contextmanager
def live_rudder(db_url: str, home: Path, *, timeout: float = 30.0, **more: Any) -> Iterator[Live]:
    """`more`: more Settings fields (deployment mode, the operator's allowances …)."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            async with SandboxServer() as sandbox:
                settings = Settings(
                    home=home,
                    database_url=db_url,
                    secrets_key=TEST_SECRETS_KEY,
                    public_url="http://rudder.test",
                    feishu_base_url=sandbox.url,
                    **more,
                )
                async with RunningServer(create_app(settings)) as server:
                    stop = asyncio.Event()
                    box.update(live=Live(server.url, sandbox.url), loop=asyncio.get_running_loop())
                    box["stop"] = stop
                    started.set()
                    await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(timeout) or "error" in box:
        raise RuntimeError(f"live server did not start: {box.get('error')!r}")
    try:
        yield box["live"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)


def seed(live: Live) -> None:
    """One of everything with an id in a path: org, agent, conversation, message, run."""
    with httpx.Client(base_url=live.url, timeout=20) as c:
        org = c.get("/api/orgs").json()[0]
        agent = c.get(f"/api/orgs/{org['id']}/agents").json()[0]
        conv = c.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
        conv.raise_for_status()
        message = c.post(
            f"/api/conversations/{conv.json()['id']}/messages", json={"body": "hello"}
        ).json()
        runs = c.get(f"/api/agents/{agent['id']}/runs").json()
        live.ids.update(
            org_id=org["id"],
            agent_id=agent["id"],
            conversation_id=conv.json()["id"],
            message_id=message["id"],
            run_id=runs[0]["id"],
        )
