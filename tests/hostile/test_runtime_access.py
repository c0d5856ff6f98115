"""Runtimes: only owners and admins choose what an agent runs (a command on this server, a URL
it calls), and what a runtime prints reaches only the conversation of its own run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from rudder import texts
from rudder.db.models import Agent, Conversation, Message, RunEventRow, User
from rudder.domain import auth, orgs
from rudder.domain.agents import RUNTIME_ADMINS_ONLY
from rudder.live import conversation_topic
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from rudder.services import Services
from rudder.texts import AGENT_TOKEN_OUT_OF_SCOPE
from tests.helpers import default_org_and_agent, wait_run
from tests.hostile.conftest import count

PROCESS = {"runtime_type": "process", "runtime_config": {"command": "sh", "args": ["-c", "id"]}}
HTTP = {"runtime_type": "http", "runtime_config": {"url": "http://169.254.169.254/latest"}}
OPENAI = {
    "runtime_type": "openai",
    "runtime_config": {"base_url": "http://10.0.0.1:8080/v1", "model": "m"},
}
CLAUDE = {"runtime_type": "claude_local", "runtime_config": {"command": "/tmp/evil"}}
RUNTIMES = {"process": PROCESS, "http": HTTP, "openai": OPENAI, "claude_local": CLAUDE}
PUBLIC = {
    "http": {"runtime_type": "http", "runtime_config": {"url": "https://agent.example/run"}},
    "openai": {
        "runtime_type": "openai",
        "runtime_config": {"base_url": "https://models.example/v1", "model": "m"},
    },
}
EXAMPLE = {"runtime_type": DEFAULT_AGENT_RUNTIME[0], "runtime_config": DEFAULT_AGENT_RUNTIME[1]}


async def _tokens(services: Services, org_id: str, agent_id: str) -> dict[str, str]:
    """Bearer tokens of a member, an admin and an agent of the organization."""
    async with services.sessions() as session, session.begin():
        found = {}
        for role in ("member", "admin"):
            _, user = await orgs.add_member(
                session, org_id, f"{role}@a.test", role.title(), role, "test"
            )
            await session.flush()
            _, found[role] = await auth.issue_token(
                session, org_id=org_id, name=role, user_id=user.id
            )
        _, found["agent"] = await auth.issue_token(
            session, org_id=org_id, name="agent", agent_id=agent_id
        )
    return found


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_only_owners_and_admins_choose_a_runtime(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, agent = await default_org_and_agent(client)
    tokens = await _tokens(services, org["id"], agent["id"])
    before = (await client.get(f"/api/agents/{agent['id']}")).json()
    refused: list[str] = []

    async def attempt(who: str, method: str, url: str, body: dict[str, Any]) -> httpx.Response:
        r = await client.request(method, url, json=body, headers=_bearer(tokens[who]))
        count("runtime changes tried by members and agent tokens")
        if r.status_code == 403:
            count("runtime changes refused to members and agent tokens")
            # An agent token may not call these routes at all (hole 10 of issue 15).
            expected = AGENT_TOKEN_OUT_OF_SCOPE if who == "agent" else RUNTIME_ADMINS_ONLY
            assert r.json() == {"error": "forbidden", "detail": expected}
        else:
            refused.append(f"{who} {method} {url} {body}: {r.status_code} {r.text[:200]}")
        return r

    for who in ("member", "agent"):
        for kind, runtime in RUNTIMES.items():
            await attempt(who, "POST", f"/api/orgs/{org['id']}/agents", {"name": kind, **runtime})
            await attempt(who, "PATCH", f"/api/agents/{agent['id']}", runtime)
        # Same type, another command; or only the config, with the type left out.
        changed = {"command": "python", "args": ["-c", "import os; os.system('id')"]}
        await attempt(who, "PATCH", f"/api/agents/{agent['id']}", {"runtime_config": changed})
        await attempt(
            who,
            "PATCH",
            f"/api/agents/{agent['id']}",
            {"runtime_type": "process", "runtime_config": changed, "name": "renamed"},
        )
    assert not refused, "\n".join(refused)
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert after == before  # nothing changed, not even the name sent alongside
    names = [a["name"] for a in (await client.get(f"/api/orgs/{org['id']}/agents")).json()]
    assert names == [agent["name"]]

    # A member may still do what picks no command or URL: the bundled example agent, resending
    # the current runtime (as the configuration form does) with a new status, renaming.
    member = _bearer(tokens["member"])
    r = await client.post(
        f"/api/orgs/{org['id']}/agents", json={"name": "Mine", **EXAMPLE}, headers=member
    )
    assert r.status_code == 201, r.text
    r = await client.patch(
        f"/api/agents/{agent['id']}",
        json={**EXAMPLE, "status": "paused", "title": "t"},
        headers=member,
    )
    assert r.status_code == 200, r.text
    # Owners and admins choose URL runtimes with public targets; one that runs on this server
    # is the instance admin's (in local mode: the local owner, the operator); a URL into this
    # server's own network is refused to everyone unless the operator allows it.
    for who, headers in (("admin", _bearer(tokens["admin"])), ("owner", {})):
        for kind, runtime in PUBLIC.items():
            r = await client.post(
                f"/api/orgs/{org['id']}/agents",
                json={"name": f"{who}-{kind}", **runtime},
                headers=headers,
            )
            assert r.status_code == 201, r.text
            r = await client.patch(f"/api/agents/{r.json()['id']}", json=PROCESS, headers=headers)
            if who == "owner":
                assert r.status_code == 200, r.text
            else:
                assert r.status_code == 403, r.text
                assert r.json()["detail"] == texts.SERVER_RUNTIME_ADMINS_ONLY
        for kind in ("http", "openai"):
            r = await client.post(
                f"/api/orgs/{org['id']}/agents",
                json={"name": f"{who}-private-{kind}", **RUNTIMES[kind]},
                headers=headers,
            )
            assert r.status_code == 422, r.text
            assert "RUDDER_ALLOW_PRIVATE_RUNTIME_URLS" in r.json()["detail"]


def test_the_openapi_document_declares_the_403(services: Services) -> None:
    from rudder.server import create_app

    paths = create_app(services.settings).openapi()["paths"]
    assert "403" in paths["/api/orgs/{org_id}/agents"]["post"]["responses"]
    assert "403" in paths["/api/agents/{agent_id}"]["patch"]["responses"]


# -- output of a runtime stays in its conversation ------------------------------------------------

INJECTED = "INJECTED-INTO-ANOTHER-CONVERSATION"


def _injecting_agent(tmp_path: Path, other: dict[str, str]) -> dict[str, Any]:
    """A process agent whose JSONL output names another conversation, message and run."""
    events = [
        {"type": "text", "text": "own reply. ", **other},
        {"type": "message", "role": "assistant", "body": INJECTED, **other},
        {"type": "text", "text": INJECTED, **other, "conversation": other["conversation_id"]},
        {"type": "tool_call", "name": "post_message", "arguments": {"body": INJECTED}, **other},
        {"type": "usage", "input_tokens": 1, **other},
        {"type": "session", "session_id": "hijacked-session", **other},
        {"type": "message.created", "data": {"body": INJECTED}, **other},
    ]
    (tmp_path / "events.json").write_text(json.dumps(events))
    script = tmp_path / "inject.py"
    script.write_text(
        "import json, sys\n"
        "sys.stdin.read()\n"
        f"for event in json.load(open({str(tmp_path / 'events.json')!r})):\n"
        "    print(json.dumps(event), flush=True)\n"
    )
    return {"command": sys.executable, "args": [str(script)]}


async def test_runtime_output_cannot_reach_another_conversation(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    org, agent = await default_org_and_agent(client)
    # The victim: another agent's conversation, with a finished run of its own.
    victim_agent = await client.post(f"/api/orgs/{org['id']}/agents", json={"name": "V", **EXAMPLE})
    assert victim_agent.status_code == 201, victim_agent.text
    victim = (
        await client.post(
            f"/api/orgs/{org['id']}/conversations", json={"agent_id": victim_agent.json()["id"]}
        )
    ).json()
    victim_msg = (
        await client.post(f"/api/conversations/{victim['id']}/messages", json={"body": "hi"})
    ).json()
    victim_runs = (await client.get(f"/api/agents/{victim_agent.json()['id']}/runs")).json()
    await wait_run(client, victim_runs[0]["id"])
    victim_before = (await client.get(f"/api/conversations/{victim['id']}/messages")).json()
    other = {
        "conversation_id": victim["id"],
        "message_id": victim_msg["id"],
        "run_id": victim_runs[0]["id"],
        "agent_id": victim_agent.json()["id"],
    }

    r = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"runtime_type": "process", "runtime_config": _injecting_agent(tmp_path, other)},
    )
    assert r.status_code == 200, r.text
    mine = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    async with services.live.subscribe(conversation_topic(victim["id"])) as watch:
        await client.post(f"/api/conversations/{mine['id']}/messages", json={"body": "go"})
        runs = (await client.get(f"/api/agents/{agent['id']}/runs")).json()
        run = await wait_run(client, runs[0]["id"])
        assert watch.queue.empty(), "an event reached the other conversation's live stream"
    count("runtime injection attempts (events naming another conversation)", 7)
    assert run["status"] == "succeeded", run

    # The victim's conversation is as it was; the output stayed in the run's own conversation.
    victim_after = (await client.get(f"/api/conversations/{victim['id']}/messages")).json()
    assert victim_after == victim_before
    reply = (await client.get(f"/api/conversations/{mine['id']}/messages")).json()[-1]
    assert reply["body"] == f"own reply. {INJECTED}" and reply["run_id"] == run["id"]
    async with services.sessions() as session:
        conv = await session.get(Conversation, victim["id"])
        assert conv is not None and conv.runtime_session_id != "hijacked-session"
        own = await session.get(Conversation, mine["id"])
        assert own is not None and own.runtime_session_id == "hijacked-session"
        victim_rows = await session.scalars(
            select(RunEventRow).where(RunEventRow.run_id == victim_runs[0]["id"])
        )
        assert all(INJECTED not in json.dumps(row.payload) for row in victim_rows)
        bodies = await session.scalars(
            select(Message.body).where(Message.conversation_id != mine["id"])
        )
        assert all(INJECTED not in body for body in bodies)
        assert await session.get(Agent, victim_agent.json()["id"]) is not None
    count("runtime injection attempts held", 7)


@pytest.mark.parametrize("kind", ["http", "openai"])
async def test_a_members_invalid_runtime_is_refused_before_validation(
    client: httpx.AsyncClient, services: Services, kind: str
) -> None:
    """A member gets the 403, not a 422 that would help them craft a valid target."""
    org, agent = await default_org_and_agent(client)
    tokens = await _tokens(services, org["id"], agent["id"])
    r = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"runtime_type": kind, "runtime_config": {"nope": 1}},
        headers=_bearer(tokens["member"]),
    )
    assert r.status_code == 403, r.text


# -- the same rule through a signed-in session and the configuration form ------------------------


@pytest.fixture
async def signed_in_app(db_url: str, tmp_path: Path) -> Any:
    from rudder.config import DeploymentMode
    from tests.auth.conftest import build_app, make_settings

    application = build_app(
        make_settings(db_url, tmp_path / "auth-home", DeploymentMode.AUTHENTICATED)
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_a_signed_in_member_cannot_change_the_runtime_in_the_form(signed_in_app: Any) -> None:
    from tests.auth.conftest import BASE_URL, SAME_ORIGIN, login, seed_people

    people = await seed_people(signed_in_app)
    transport = httpx.ASGITransport(app=signed_in_app)
    form = {"runtime_type": "process", "runtime_config": json.dumps(PROCESS["runtime_config"])}
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers=SAME_ORIGIN
    ) as client:
        assert (await login(client, people.max)).status_code == 200
        page = await client.post(f"/agents/{people.agent_id}/configuration", data=form)
        count("runtime changes tried by members and agent tokens")
        assert page.status_code in (403, 422), page.text[:300]
        assert "only owners and admins" in page.text
        r = await client.patch(f"/api/agents/{people.agent_id}", json=PROCESS)
        count("runtime changes tried by members and agent tokens")
        assert r.status_code == 403 and r.json()["detail"] == RUNTIME_ADMINS_ONLY
        count("runtime changes refused to members and agent tokens", 2)
        agent = (await client.get(f"/api/agents/{people.agent_id}")).json()
        assert (agent["runtime_type"], agent["runtime_config"]) == (
            EXAMPLE["runtime_type"],
            EXAMPLE["runtime_config"],
        )
        # The owner may not either: a command on this server is the instance admin's choice.
        await client.post("/api/auth/logout")
        assert (await login(client, people.ada)).status_code == 200
        page = await client.post(f"/agents/{people.agent_id}/configuration", data=form)
        assert page.status_code in (403, 422), page.text[:300]
        assert "only an instance admin" in page.text
        # Once the operator makes her an instance admin, she may.
        services: Services = signed_in_app.state.services
        async with services.sessions() as session, session.begin():
            ada = await session.scalar(select(User).where(User.email == people.ada))
            assert ada is not None
            ada.is_instance_admin = True
        page = await client.post(f"/agents/{people.agent_id}/configuration", data=form)
        assert page.status_code == 303, page.text[:300]
