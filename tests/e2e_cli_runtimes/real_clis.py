"""The real Claude Code and Codex CLIs (pinned in tests/node/cli-runtimes, installed by
`make test` where npm exists), pointed at the fake model API on loopback.

A test that needs a CLI skips with the reason when it is not installed, unless
RUDDER_REQUIRE_REAL_CLIS=1 (set by .ci/run), under which it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_cli_runtimes.fake_model import FakeModel
from tests.helpers import default_org_and_agent, wait_run

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / "tests" / "node" / "cli-runtimes"
BIN = CLI_DIR / "node_modules" / ".bin"
# Keep every CLI off the internet (there is none here but loopback; this also keeps them quick).
QUIET_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "NO_COLOR": "1",
}


def real_cli(name: str) -> str:
    path = BIN / name
    if path.exists() and os.access(path, os.X_OK):
        return str(path)
    reason = (
        f"the real `{name}` CLI is not installed in {BIN.relative_to(ROOT)} "
        "(`make test` installs it with npm)"
    )
    if os.environ.get("RUDDER_REQUIRE_REAL_CLIS") == "1":
        pytest.fail(f"RUDDER_REQUIRE_REAL_CLIS=1 but {reason}")
    pytest.skip(reason)


def claude_config(claude: str, fake: FakeModel, home: Path, **extra: Any) -> dict[str, Any]:
    """A `claude_local` runtime config that runs the real CLI against the `fake` model API."""
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **QUIET_ENV,
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "sk-ant-test-key",
        **extra.pop("env", {}),
    }
    return {"command": claude, "cwd": str(work), "env": env, "grace_sec": 1, **extra}


def codex_home(home: Path, model: FakeModel) -> Path:
    """A CODEX_HOME whose config.toml points a custom provider at `model`."""
    codex = home / "codex-home"
    codex.mkdir(parents=True, exist_ok=True)
    (codex / "config.toml").write_text(
        'model = "gpt-fake"\n'
        'model_provider = "fake"\n'
        "check_for_update_on_startup = false\n"
        "[analytics]\nenabled = false\n"
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{model.url}/v1"\n'
        'env_key = "FAKE_MODEL_KEY"\n'
        'wire_api = "responses"\n'
    )
    return codex


def codex_config(codex: str, model: FakeModel, home: Path, **extra: Any) -> dict[str, Any]:
    """A `codex_local` runtime config that runs the real CLI against `model`."""
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **QUIET_ENV,
        "HOME": str(home),
        "CODEX_HOME": str(codex_home(home, model)),
        "FAKE_MODEL_KEY": "sk-fake-test-key",
        **extra.pop("env", {}),
    }
    return {"command": codex, "cwd": str(work), "env": env, "grace_sec": 1, **extra}


def forget_sessions(home: Path) -> None:
    """Delete what the CLIs keep of their sessions, as a wiped home directory would."""
    for where in (home / ".claude" / "projects", home / "codex-home" / "sessions"):
        shutil.rmtree(where, ignore_errors=True)


async def make_agent(
    client: httpx.AsyncClient, runtime_type: str, config: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    org, _ = await default_org_and_agent(client)
    created = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={
            "name": f"Real {runtime_type}",
            "runtime_type": runtime_type,
            "runtime_config": config,
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    return agent


async def new_conversation(client: httpx.AsyncClient, agent: dict[str, Any]) -> str:
    created = await client.post(
        f"/api/orgs/{agent['org_id']}/conversations", json={"agent_id": agent["id"]}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def say(client: httpx.AsyncClient, conversation_id: str, body: str) -> str:
    posted = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"body": body}
    )
    assert posted.status_code == 201, posted.text
    return str(posted.json()["run_id"])


async def finish(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    # The real CLIs take a second or two to start; bounded well inside the test timeout.
    return await wait_run(client, run_id, timeout=90)


async def reply_of(client: httpx.AsyncClient, run: dict[str, Any]) -> dict[str, Any]:
    messages = (await client.get(f"/api/conversations/{run['conversation_id']}/messages")).json()
    found: dict[str, Any] = next(m for m in messages if m["id"] == run["reply_message_id"])
    return found


async def run_events(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await client.get(f"/api/runs/{run_id}/events")).json()
    return events
