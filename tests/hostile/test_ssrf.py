"""`http`/`openai` runtimes may not make the server call its own network (issue 15, hole 1): loopback,
link-local (cloud metadata), private ranges, and names or encodings that lead there. Refused when
saved (422 naming the field and RUDDER_ALLOW_PRIVATE_RUNTIME_URLS) and again when the request is
made, before connecting: a target stored straight into the database gets no traffic either. Only
loopback ever receives a connection attempt here (our own listener, which counts them); the
positive control sets the operator's allowance and reaches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Agent
from rudder.server import RunningServer
from tests.helpers import wait_run
from tests.hostile.conftest import count
from tests.hostile.live import Live, live_rudder

ALLOWANCE = "RUDDER_ALLOW_PRIVATE_RUNTIME_URLS"
# Refused when saved; never contacted, on any code (saving does not connect).
UNREACHABLE_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1:8080/v1",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::ffff:169.254.169.254]/",
]


def _loopback_targets(port: int) -> list[str]:
    """Spellings of this machine's own address; only these are ever tried at request time."""
    return [
        f"http://127.0.0.1:{port}/agent",
        f"http://localhost:{port}/agent",
        f"http://[::1]:{port}/agent",
        f"http://127.1:{port}/agent",
        f"http://2130706433:{port}/agent",
        f"http://[::ffff:127.0.0.1]:{port}/agent",
        f"http://0.0.0.0:{port}/agent",
    ]


class Listener:
    """An agent endpoint on loopback that counts every request it gets."""

    def __init__(self) -> None:
        self.hits = 0

        async def agent(request: Request) -> JSONResponse:
            self.hits += 1
            return JSONResponse([{"type": "text", "text": "pong"}])

        self.app = Starlette(
            routes=[
                Route("/agent", agent, methods=["POST"]),
                Route("/agent/chat/completions", agent, methods=["POST"]),
            ]
        )


def _runtime(kind: str, url: str) -> dict[str, Any]:
    if kind == "http":
        return {"runtime_type": "http", "runtime_config": {"url": url}}
    return {"runtime_type": "openai", "runtime_config": {"base_url": url, "model": "m"}}


async def _store(db_url: str, org_id: str, name: str, runtime: dict[str, Any]) -> str:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            agent = Agent(org_id=org_id, name=name, **runtime)
            session.add(agent)
            await session.flush()
            return agent.id
    finally:
        await engine.dispose()


async def _run_once(client: httpx.AsyncClient, org_id: str, agent_id: str) -> dict[str, Any]:
    conv = await client.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": agent_id})
    assert conv.status_code == 201, conv.text
    sent = await client.post(
        f"/api/conversations/{conv.json()['id']}/messages", json={"body": "hi"}
    )
    assert sent.status_code == 201, sent.text
    runs = (await client.get(f"/api/agents/{agent_id}/runs")).json()
    return await wait_run(client, runs[0]["id"])


async def _org(live: Live, client: httpx.AsyncClient) -> str:
    return str((await client.get("/api/orgs")).json()[0]["id"])


async def test_runtime_urls_into_this_servers_network_are_refused(
    db_url: str, tmp_path: Path
) -> None:
    listener = Listener()
    async with RunningServer(listener.app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with live_rudder(db_url, tmp_path / "home") as live:
            async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
                org_id = await _org(live, client)
                example = (await client.get(f"/api/orgs/{org_id}/agents")).json()[0]["id"]
                # Saved: refused on create and on PATCH, naming the field and the allowance.
                targets = UNREACHABLE_TARGETS + _loopback_targets(port)
                for i, url in enumerate(targets):
                    for kind in ("http", "openai"):
                        field = "url" if kind == "http" else "base_url"
                        for r in (
                            await client.post(
                                f"/api/orgs/{org_id}/agents",
                                json={"name": f"{kind}-{i}", **_runtime(kind, url)},
                            ),
                            await client.patch(f"/api/agents/{example}", json=_runtime(kind, url)),
                        ):
                            count("ssrf: runtime targets tried")
                            assert r.status_code == 422, f"{url}: {r.status_code} {r.text}"
                            detail = r.json()["detail"]
                            assert detail.startswith(f"runtime_config.{field}: ")
                            assert ALLOWANCE in detail
                            count("ssrf: runtime targets refused")
                # Stored straight into the database: the request is refused before connecting.
                for i, url in enumerate(_loopback_targets(port)):
                    for kind in ("http", "openai"):
                        agent_id = await _store(
                            db_url, org_id, f"s-{kind}-{i}", _runtime(kind, url)
                        )
                        run = await _run_once(client, org_id, agent_id)
                        count("ssrf: runtime targets tried")
                        assert run["status"] == "failed", f"{url}: {run}"
                        assert ALLOWANCE in (run["error"] or ""), f"{url}: {run['error']}"
                        count("ssrf: runtime targets refused")
        count("ssrf: requests that reached the target", listener.hits)
        assert listener.hits == 0, "a runtime request reached this server's own network"


async def test_the_operator_may_allow_private_targets(db_url: str, tmp_path: Path) -> None:
    listener = Listener()
    async with RunningServer(listener.app) as server:
        with live_rudder(db_url, tmp_path / "home", allow_private_runtime_urls=True) as live:
            async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
                org_id = await _org(live, client)
                created = await client.post(
                    f"/api/orgs/{org_id}/agents",
                    json={"name": "local", **_runtime("http", f"{server.url}/agent")},
                )
                assert created.status_code == 201, created.text
                run = await _run_once(client, org_id, created.json()["id"])
                assert run["status"] == "succeeded", run
    assert listener.hits == 1


async def test_the_connection_itself_checks_the_address() -> None:
    """The backstop for DNS rebinding: whatever was checked before, the client a runtime uses
    resolves the name itself and connects only to an address it has just checked."""
    from rudder.runtimes.policy import guarded_client

    listener = Listener()
    async with RunningServer(listener.app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        async with guarded_client("runtime_config.url", allow_private=False) as client:
            for url in _loopback_targets(port):
                count("ssrf: runtime targets tried")
                with pytest.raises(httpx.ConnectError) as refused:
                    await client.post(url, json={})
                assert ALLOWANCE in str(refused.value) or "does not resolve" in str(refused.value)
                count("ssrf: runtime targets refused")
    assert listener.hits == 0


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("0.0.0.0", "unspecified"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    import ipaddress

    from rudder.runtimes.policy import address_kind

    assert address_kind(ipaddress.ip_address(address)) == kind
