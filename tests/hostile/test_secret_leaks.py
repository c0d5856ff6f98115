"""Secrets everywhere: agents are given a secret through an env or header reference and fail in
every way a runtime can, then everything Rudder kept or said is scanned for the secret values:
every row of every table (run events, run errors and usage, message errors, activity), every
log record at DEBUG with its traceback, every API answer (GET and non-GET) and the pages.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from rudder.config import Settings
from rudder.db.base import Base
from rudder.server import RunningServer
from tests.conftest import FeishuRig
from tests.helpers import wait_run
from tests.hostile.conftest import count
from tests.hostile.test_isolation import BODIES, STREAMS, World, _api_operations, _fill, _world


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The echo endpoint below listens on loopback: the operator's allowance, given explicitly.
    return settings.model_copy(update={"allow_private_runtime_urls": True})


# Rudder's own secret, the HTTP runtime's, and a spare: each agent below is handed one of them.
SECRET_NAME = "OPENAI_API_KEY"  # made by _world, value in world.secrets[0]


def _agent_script(tmp_path: Path, how: str) -> dict[str, Any]:
    """A process agent that reads its secret from $LEAKY, leaks it on stderr and in log events,
    then fails `how`; with how='metadata', in thinking, tool and usage events instead."""
    script = tmp_path / f"leak_{how}.py"
    script.write_text(
        "import json, os, sys\n"
        "sys.stdin.read()\n"
        "key = os.environ['LEAKY']\n"
        "print(f'debug: using key {key}', file=sys.stderr, flush=True)\n"
        "def say(**e): print(json.dumps(e), flush=True)\n"
        "say(type='text', text='working on it')\n"
        "say(type='log', text=f'log line with {key}')\n"
        f"how = {how!r}\n"
        "if how == 'metadata':\n"
        "    say(type='thinking', text=f'thinking about {key}')\n"
        "    say(type='tool_call', name=f'call-{key}', arguments={'auth': f'Bearer {key}'})\n"
        "    say(type='tool_result', name='r', output=f'echo {key}', is_error=True)\n"
        "    say(type='usage', input_tokens=1, api_key=key)\n"
        "    say(type='error', message='refused')\n"
        "elif how == 'error_event':\n"
        "    say(type='error', message=f'upstream refused key {key}')\n"
        "elif how == 'exit_code':\n"
        "    print(f'Traceback: AuthError: bad key {key}', file=sys.stderr, flush=True)\n"
        "    sys.exit(3)\n"
        "elif how == 'bad_line':\n"
        "    print(f'not json {key}', flush=True)\n"
    )
    return {
        "command": sys.executable,
        "args": [str(script)],
        "env": {"LEAKY": {"secret": SECRET_NAME}},
    }


def _echo_app() -> Starlette:
    """An HTTP agent endpoint that refuses the request and echoes its credential back."""

    async def refuse(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            f"bad credentials: {request.headers.get('authorization')}", status_code=401
        )

    async def garbage(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization")
        return JSONResponse([{"type": "usage", "key": auth}, {"type": "error", "message": auth}])

    routes = [
        Route("/refuse", refuse, methods=["POST"]),
        Route("/chat/completions", refuse, methods=["POST"]),  # the openai runtime's
        Route("/garbage", garbage, methods=["POST"]),
    ]
    return Starlette(routes=routes)


HEADER = {"Authorization": {"secret": SECRET_NAME}}


def _failing_runtimes(tmp_path: Path, base_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Runtimes handed the secret, failing with it in their stderr, exit reason or error body."""
    runtimes: list[tuple[str, str, dict[str, Any]]] = [
        (f"process-{how}", "process", _agent_script(tmp_path, how))
        for how in ("error_event", "exit_code", "bad_line")
    ]
    runtimes.append(("http", "http", {"url": f"{base_url}/refuse", "headers": HEADER}))
    runtimes.append(
        ("openai", "openai", {"base_url": base_url, "model": "m", "api_key_secret": SECRET_NAME})
    )
    return runtimes


def _metadata_runtimes(tmp_path: Path, base_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Runtimes that put the secret in the data of their events (thinking, tools, usage)."""
    return [
        ("process-metadata", "process", _agent_script(tmp_path, "metadata")),
        ("http-metadata", "http", {"url": f"{base_url}/garbage", "headers": HEADER}),
    ]


async def _run_leaky_agents(
    rig: FeishuRig, world: World, runtimes: list[tuple[str, str, dict[str, Any]]]
) -> int:
    org_id = world.ids["org_id"]
    for name, runtime_type, config in runtimes:
        r = await rig.client.post(
            f"/api/orgs/{org_id}/agents",
            json={"name": name, "runtime_type": runtime_type, "runtime_config": config},
        )
        assert r.status_code == 201, r.text
        agent_id = r.json()["id"]
        conv = await rig.client.post(
            f"/api/orgs/{org_id}/conversations", json={"agent_id": agent_id}
        )
        msg = await rig.client.post(
            f"/api/conversations/{conv.json()['id']}/messages", json={"body": "go"}
        )
        for response in (r, conv, msg):
            _scan(response.text, world.secrets, f"{response.request.method} {response.url.path}")
        runs = (await rig.client.get(f"/api/agents/{agent_id}/runs")).json()
        run = await wait_run(rig.client, runs[0]["id"])
        assert run["status"] == "failed", (name, run)
        # Where the failure reason quotes the secret, it is masked, not dropped.
        assert "***" in (run["error"] or "") or name.endswith("metadata"), run
    return len(runtimes)


LEAKS: list[str] = []


def _scan(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        if secret in text:
            LEAKS.append(where)


async def _scan_database(rig: FeishuRig, secrets: list[str]) -> int:
    rows = 0
    async with rig.services.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                rows += 1
                for column, value in row.items():
                    if isinstance(value, bytes):
                        text = value.decode("latin-1")
                    elif isinstance(value, dict | list):
                        text = json.dumps(value)
                    else:
                        text = str(value)
                    _scan(text, secrets, f"table {table.name}.{column}")
    return rows


async def _walk_api(rig: FeishuRig, world: World) -> int:
    """Every operation of the API as the owner: GETs first, then writes, deletes last."""
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    operations = sorted(_api_operations(rig), key=lambda op: order.get(op[0], 1))
    seen = 0
    for method, path in operations:
        if path in STREAMS or path.endswith("/webhook"):
            continue
        body = _fill(BODIES.get((method, path)), world.ids)
        r = await rig.client.request(method, _fill(path, world.ids), json=body, timeout=10)
        seen += 1
        assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:300]}"
        _scan(r.text, world.secrets, f"{method} {path}")
    for page in ("/", f"/agents/{world.ids['agent_id']}", "/settings"):
        r = await rig.client.get(page)
        seen += 1
        _scan(r.text, world.secrets, f"page {page}")
    return seen


async def _scan_everything(
    rig: FeishuRig, world: World, caplog: pytest.LogCaptureFixture, *, walk: bool = True
) -> None:
    count("secret scan: database rows checked", await _scan_database(rig, world.secrets))
    if walk:
        count("secret scan: responses checked", await _walk_api(rig, world))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        # The formatted record: its message, and any exception text and traceback with it.
        _scan(formatter.format(record), world.secrets, f"log record of {record.name}")
    count("secret scan: log records checked", len(caplog.records))
    count("secret scan: leaks found", len(set(LEAKS)))


async def test_secrets_given_to_failing_runtimes_leak_nowhere(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    LEAKS.clear()
    world = await _world(rig)
    async with RunningServer(_echo_app()) as echo:
        runtimes = _failing_runtimes(tmp_path, echo.url)
        count("secret scan: failing runtimes given a secret", len(runtimes))
        await _run_leaky_agents(rig, world, runtimes)
    await _scan_everything(rig, world, caplog)
    assert not LEAKS, "secret found in:\n" + "\n".join(sorted(set(LEAKS)))


async def test_secrets_in_the_data_of_agent_events_are_masked(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    LEAKS.clear()
    world = await _world(rig)
    async with RunningServer(_echo_app()) as echo:
        runtimes = _metadata_runtimes(tmp_path, echo.url)
        count("secret scan: failing runtimes given a secret", len(runtimes))
        await _run_leaky_agents(rig, world, runtimes)
    await _scan_everything(rig, world, caplog, walk=False)  # the rows are the point
    assert not LEAKS, "secret found in:\n" + "\n".join(sorted(set(LEAKS)))
