"""`rudder feishu connect` against a running Rudder and the sandbox."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from typer.testing import CliRunner

from rudder.cli import app as cli_app
from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from tests.conftest import FeishuRig
from tests.helpers import wait_for


async def test_cli_connect_prints_link_and_waits_for_connected(settings: Settings) -> None:
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
        settings.feishu_base_url = sandbox.url
        async with RunningServer(create_app(settings)) as server:
            runner = CliRunner()
            call = asyncio.create_task(
                asyncio.to_thread(
                    runner.invoke,
                    cli_app,
                    [
                        "feishu",
                        "connect",
                        "--agent",
                        "Example Agent",
                        "--region",
                        "feishu",
                        "--url",
                        server.url,
                        "--timeout",
                        "20",
                    ],
                )
            )

            async def pending_code() -> str | None:
                regs = (
                    await sb.get("/_sandbox/api/registrations", params={"status": "pending"})
                ).json()
                items = regs.get("items", regs) if isinstance(regs, dict) else regs
                return items[0]["user_code"] if items else None

            code = await wait_for(pending_code, timeout=15)
            await sb.post(f"/_sandbox/api/registrations/{code}/approve", json={})
            result = await asyncio.wait_for(call, 30)
    assert result.exit_code == 0, result.output
    assert "/page/cli?user_code=" in result.output
    assert "connected to Feishu CN" in result.output


async def test_cli_status_lists_each_agents_bot(
    rig: FeishuRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.helpers import default_org_and_agent

    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Status Bot", "brand": "lark"})
    creds = {"region": "lark", "app_id": app["app_id"], "app_secret": app["app_secret"]}
    r = await rig.client.post(f"/api/agents/{agent['id']}/integrations/feishu/manual", json=creds)
    assert r.status_code == 200
    settings = rig.services.settings
    monkeypatch.setenv("RUDDER_HOME", str(settings.home_dir))
    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["feishu", "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [
        {
            "agent": agent["name"],
            "region": "lark",
            "status": "connected",
            "app_id": app["app_id"],
            "bot_name": "Status Bot",
            "transport": "long_connection",
            "last_event_at": None,
            "last_error": None,
        }
    ]
    assert app["app_secret"] not in result.output
