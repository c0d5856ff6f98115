"""`rudder agent create|edit|pause|resume|archive|revisions` against a running Rudder."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from typer.testing import CliRunner, Result

from rudder.cli import app as cli_app
from rudder.config import Settings
from rudder.server import RunningServer, create_app
from tests.agents.support import cost_runtime


async def _cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


async def test_agent_commands(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # `create` opens the database itself, like `rudder agent list`.
    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("RUDDER_HOME", str(settings.home_dir))
    assert settings.secrets_key is not None
    monkeypatch.setenv("RUDDER_SECRETS_KEY", settings.secrets_key.get_secret_value())
    async with (
        RunningServer(create_app(settings)) as server,
        httpx.AsyncClient(base_url=server.url) as api,
    ):
        org = (await api.get("/api/orgs")).json()[0]
        await api.post(
            f"/api/orgs/{org['id']}/skills",
            json={"name": "triage", "description": "Sort.", "instructions": "Go."},
        )
        created = await _cli(
            "agent",
            "create",
            "Clerk",
            "--config",
            json.dumps(cost_runtime()),
            "--title",
            "Desk clerk",
            "--capabilities",
            "Files things.",
            "--skill",
            "triage",
            "--budget",
            "5",
        )
        assert created.exit_code == 0, created.output
        agent = next(
            a
            for a in (await api.get(f"/api/orgs/{org['id']}/agents")).json()
            if a["name"] == "Clerk"
        )
        assert agent["title"] == "Desk clerk" and agent["skills"] == ["triage"]
        assert agent["budget_monthly_cents"] == 500
        url = ["--url", server.url]
        edited = await _cli(
            "agent",
            "edit",
            "Clerk",
            "--title",
            "Head clerk",
            "--budget",
            "7.5",
            "--no-skills",
            *url,
        )
        assert edited.exit_code == 0, edited.output
        assert "active" in edited.output and "of $7.50" in edited.output
        now = (await api.get(f"/api/agents/{agent['id']}")).json()
        assert now["title"] == "Head clerk" and now["skills"] == []
        assert now["budget_monthly_cents"] == 750
        bad = await _cli("agent", "edit", "Clerk", "--skill", "nope", *url)
        assert bad.exit_code == 1 and "skills" in bad.output
        paused = await _cli("agent", "pause", "Clerk", *url)
        assert paused.exit_code == 0 and "paused (manual)" in paused.output
        resumed = await _cli("agent", "resume", "Clerk", *url)
        assert resumed.exit_code == 0 and "active" in resumed.output
        revisions = await _cli("agent", "revisions", "Clerk", *url)
        assert revisions.exit_code == 0 and "create" in revisions.output
        assert "title" in revisions.output
        archived = await _cli("agent", "archive", "Clerk", "--yes", *url)
        assert archived.exit_code == 0 and "terminated" in archived.output
        again = await _cli("agent", "resume", "Clerk", *url)
        assert again.exit_code == 1 and "terminated" in again.output
        missing = await _cli("agent", "pause", "Nobody", *url)
        assert missing.exit_code == 2 and "No agent named" in missing.output
