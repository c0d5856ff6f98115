"""Commands on the server are the operator's decision (issue 15, hole 1), attacked over a real socket
in authenticated mode: a member of org A makes an organization of their own and a `process` agent
in it that would write a marker file; the marker must never appear. Also: a runtime stored before
the rule (straight into the database) does not start, and an allowlist admits only its commands.
Each attack has a positive control, in which an allowed command writes its marker.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from rudder import texts
from rudder.config import DeploymentMode
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Agent, Membership, Organization, User
from rudder.domain import auth
from rudder.domain.agents import RUNTIME_ADMINS_ONLY
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from tests.helpers import wait_run
from tests.hostile.conftest import count
from tests.hostile.live import Live, live_rudder

PASSWORD = "correct horse battery"
AUTHENTICATED: dict[str, Any] = {
    "deployment_mode": DeploymentMode.AUTHENTICATED,
    "session_secret": "test-session-secret-for-hostile-tests",
}


def _touch(marker: Path) -> dict[str, Any]:
    """The issue's payload, harmless: a shell command whose only effect is the marker file."""
    return {
        "runtime_type": "process",
        "runtime_config": {"command": "sh", "args": ["-c", f"id > {marker}; echo done"]},
    }


async def _person(db_url: str, email: str, *, role: str = "member", admin: bool = False) -> None:
    """A user who signs in with PASSWORD, `role` of the first organization (org A)."""
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            org = (
                await session.scalars(select(Organization).order_by(Organization.created_at))
            ).first()
            assert org is not None
            user = User(
                email=email,
                name=email.split("@")[0],
                password_hash=auth.hash_password(PASSWORD),
            )
            if admin:
                user.is_instance_admin = True
            session.add(user)
            await session.flush()
            session.add(Membership(org_id=org.id, user_id=user.id, role=role))
    finally:
        await engine.dispose()


async def _store_agent(db_url: str, org_id: str, name: str, runtime: dict[str, Any]) -> str:
    """An agent written straight into the database, as one saved before the rule would be."""
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            agent = Agent(
                org_id=org_id,
                name=name,
                runtime_type=runtime["runtime_type"],
                runtime_config=runtime["runtime_config"],
            )
            session.add(agent)
            await session.flush()
            return agent.id
    finally:
        await engine.dispose()


@asynccontextmanager
async def _signed_in(live: Live, email: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=live.url, headers={"Origin": live.url}, timeout=20
    ) as client:
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client


async def _say_hello(client: httpx.AsyncClient, org_id: str, agent_id: str) -> dict[str, Any]:
    """One message to the agent; the run it starts, once finished."""
    conv = await client.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": agent_id})
    assert conv.status_code == 201, conv.text
    sent = await client.post(
        f"/api/conversations/{conv.json()['id']}/messages", json={"body": "hello"}
    )
    assert sent.status_code == 201, sent.text
    runs = (await client.get(f"/api/agents/{agent_id}/runs")).json()
    return await wait_run(client, runs[0]["id"])


def _refused(r: httpx.Response, status: int, detail: str) -> None:
    count("server commands: attempts by people who may not")
    assert r.status_code == status, r.text
    assert r.json()["detail"] == detail
    count("server commands: attempts refused")


async def test_a_member_cannot_create_an_org_and_run_a_command_there(
    db_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    with live_rudder(db_url, tmp_path / "home", **AUTHENTICATED) as live:
        await _person(db_url, "mallory@a.test")
        async with _signed_in(live, "mallory@a.test") as client:
            org_a = (await client.get("/api/orgs")).json()[0]
            # In org A, where Mallory is a member: refused, as before.
            r = await client.post(
                f"/api/orgs/{org_a['id']}/agents", json={"name": "x", **_touch(marker)}
            )
            _refused(r, 403, RUNTIME_ADMINS_ONLY)
            # The attack: an organization of her own, where she would be the owner.
            r = await client.post("/api/orgs", json={"name": "Org B"})
            if r.status_code == 201:
                agent = await client.post(
                    f"/api/orgs/{r.json()['id']}/agents", json={"name": "pwn", **_touch(marker)}
                )
                if agent.status_code == 201:
                    await _say_hello(client, r.json()["id"], agent.json()["id"])
            _refused(r, 403, texts.ORG_CREATION_ADMINS_ONLY)
            assert [o["id"] for o in (await client.get("/api/orgs")).json()] == [org_a["id"]]
    count("server commands: marker files that appeared", int(marker.exists()))
    assert not marker.exists(), "the member's command ran on the server"


async def test_an_org_owner_is_not_an_instance_admin(db_url: str, tmp_path: Path) -> None:
    marker, control = tmp_path / "pwned", tmp_path / "allowed"
    settings: dict[str, Any] = {**AUTHENTICATED, "allow_org_creation": True}
    with live_rudder(db_url, tmp_path / "home", **settings) as live:
        await _person(db_url, "mallory@a.test")
        await _person(db_url, "root@a.test", role="owner", admin=True)
        async with _signed_in(live, "mallory@a.test") as client:
            # Self-service organizations are on: she owns org B, and still runs no command.
            org_b = await client.post("/api/orgs", json={"name": "Org B"})
            assert org_b.status_code == 201, org_b.text
            org_id = org_b.json()["id"]
            for runtime in (
                _touch(marker),
                {"runtime_type": "claude_local", "runtime_config": {"command": "/bin/sh"}},
                {"runtime_type": "codex_local", "runtime_config": {}},
            ):
                r = await client.post(f"/api/orgs/{org_id}/agents", json={"name": "x", **runtime})
                _refused(r, 403, texts.SERVER_RUNTIME_ADMINS_ONLY)
            example = await client.post(
                f"/api/orgs/{org_id}/agents",
                json={
                    "name": "ok",
                    "runtime_type": DEFAULT_AGENT_RUNTIME[0],
                    "runtime_config": DEFAULT_AGENT_RUNTIME[1],
                },
            )
            assert example.status_code == 201, example.text  # the bundled example is fine
            r = await client.patch(f"/api/agents/{example.json()['id']}", json=_touch(marker))
            _refused(r, 403, texts.SERVER_RUNTIME_ADMINS_ONLY)
            # One stored before the rule (or written to the database by hand) does not start.
            stored = await _store_agent(db_url, org_id, "stored", _touch(marker))
            run = await _say_hello(client, org_id, stored)
            count("server commands: attempts by people who may not")
            assert run["status"] == "failed" and run["error"] == texts.SERVER_RUNTIME_NOT_APPROVED
            count("server commands: attempts refused")
            # Re-saving it unchanged, as the owner, approves nothing.
            same = await client.patch(f"/api/agents/{stored}", json=_touch(marker))
            assert same.status_code == 200, same.text
            run = await _say_hello(client, org_id, stored)
            assert run["status"] == "failed" and run["error"] == texts.SERVER_RUNTIME_NOT_APPROVED
        # Positive control: the instance admin may, and the command runs.
        async with _signed_in(live, "root@a.test") as client:
            org_a = (await client.get("/api/orgs")).json()[0]["id"]
            agent = await client.post(
                f"/api/orgs/{org_a}/agents", json={"name": "ops", **_touch(control)}
            )
            assert agent.status_code == 201, agent.text
            await _say_hello(client, org_a, agent.json()["id"])
            # A runtime stored before the rule runs once an instance admin saves it unchanged.
            approved = tmp_path / "approved"
            stored = await _store_agent(db_url, org_a, "legacy", _touch(approved))
            run = await _say_hello(client, org_a, stored)
            assert run["error"] == texts.SERVER_RUNTIME_NOT_APPROVED and not approved.exists()
            same = await client.patch(f"/api/agents/{stored}", json=_touch(approved))
            assert same.status_code == 200, same.text
            await _say_hello(client, org_a, stored)
            assert approved.exists()
    assert control.exists(), "the positive control did not run: the marker proves nothing"
    count("server commands: marker files that appeared", int(marker.exists()))
    assert not marker.exists(), "a command chosen by an org owner ran on the server"


async def test_an_allowlist_admits_only_its_commands(db_url: str, tmp_path: Path) -> None:
    marker, control = tmp_path / "pwned", tmp_path / "allowed"
    allowed = tmp_path / "agent.sh"
    allowed.write_text(f"#!/bin/sh\ncat > /dev/null\ntouch {control}\necho done\n")
    allowed.chmod(0o755)
    settings: dict[str, Any] = {
        **AUTHENTICATED,
        "server_runtimes": f"{allowed},/usr/local/bin/none",
    }
    with live_rudder(db_url, tmp_path / "home", **settings) as live:
        await _person(db_url, "root@a.test", role="owner", admin=True)
        async with _signed_in(live, "root@a.test") as client:
            org = (await client.get("/api/orgs")).json()[0]["id"]
            listed = {"runtime_type": "process", "runtime_config": {"command": str(allowed)}}
            loader = {
                "runtime_type": "process",
                "runtime_config": {"command": str(allowed), "env": {"LD_PRELOAD": "/tmp/x.so"}},
            }
            # Not on the list: refused even to an instance admin; so are loader variables.
            r = await client.post(f"/api/orgs/{org}/agents", json={"name": "x", **_touch(marker)})
            count("server commands: attempts by people who may not")
            assert r.status_code == 403 and "RUDDER_SERVER_RUNTIMES" in r.json()["detail"]
            count("server commands: attempts refused")
            r = await client.post(f"/api/orgs/{org}/agents", json={"name": "y", **loader})
            _refused(r, 403, texts.SERVER_RUNTIME_LOADER_ENV.format(name="LD_PRELOAD"))
            stored = await _store_agent(db_url, org, "stored", _touch(marker))
            run = await _say_hello(client, org, stored)
            count("server commands: attempts by people who may not")
            assert run["status"] == "failed" and "RUDDER_SERVER_RUNTIMES" in run["error"]
            count("server commands: attempts refused")
            # Positive control: the listed command is chosen and runs.
            agent = await client.post(f"/api/orgs/{org}/agents", json={"name": "ok", **listed})
            assert agent.status_code == 201, agent.text
            await _say_hello(client, org, agent.json()["id"])
    assert control.exists(), "the allowed command did not run"
    count("server commands: marker files that appeared", int(marker.exists()))
    assert not marker.exists(), "a command outside the allowlist ran"


def test_the_python_that_runs_the_tests_is_not_special() -> None:
    # The example agent is `python -m rudder.runtimes.example_agent`: allowed by name and
    # arguments, not because of which interpreter runs the tests.
    from rudder.runtimes.policy import RuntimePolicy, choice_problem

    strict = RuntimePolicy(server_runtimes="off")
    other_python = {"command": sys.executable, "args": ["-c", "print(1)"]}
    assert choice_problem(strict, "process", other_python, instance_admin=True) == (
        texts.SERVER_RUNTIMES_OFF
    )
    example = {"command": "python", "args": ["-m", "rudder.runtimes.example_agent"]}
    assert choice_problem(strict, "process", example, instance_admin=False) is None
