"""The JSON API: contract fields, validation, isolation, errors."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from rudder.db.models import Agent, ApiToken, Membership, Organization, User
from rudder.domain import auth
from rudder.services import Services
from tests.helpers import default_org_and_agent


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/api/orgs",
        "/api/orgs/{org_id}/agents",
        "/api/agents/{agent_id}",
        "/api/orgs/{org_id}/members",
        "/api/orgs/{org_id}/conversations",
        "/api/conversations/{conversation_id}",
        "/api/conversations/{conversation_id}/messages",
        "/api/conversations/{conversation_id}/events",
        "/api/conversations/{conversation_id}/stop",
        "/api/conversations/{conversation_id}/fork",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/cancel",
    ):
        assert path in spec["paths"], path


async def test_first_start_creates_default_org_with_labelled_example_agent(
    client: httpx.AsyncClient,
) -> None:
    org, agent = await default_org_and_agent(client)
    assert org["name"]
    assert agent["is_example"] is True
    for field in ("id", "name", "role", "status", "runtime_type", "runtime_config"):
        assert field in agent
    members = (await client.get(f"/api/orgs/{org['id']}/members")).json()
    assert [m["role"] for m in members] == ["owner"]
    page = await client.get("/")
    assert page.status_code == 200
    assert agent["name"] in page.text and "Example agent" in page.text


async def test_create_agent_validation_names_the_field(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    missing = await client.post(f"/api/orgs/{org['id']}/agents", json={"runtime_type": "process"})
    assert missing.status_code == 422
    body = missing.json()
    assert body["error"] == "invalid" and "name" in body["detail"]

    bad_runtime = await client.post(
        f"/api/orgs/{org['id']}/agents", json={"name": "X", "runtime_type": "telepathy"}
    )
    assert bad_runtime.status_code == 422
    assert "runtime_type" in bad_runtime.json()["detail"]

    bad_config = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Y", "runtime_type": "http", "runtime_config": {}},
    )
    assert bad_config.status_code == 422
    assert "runtime_config" in bad_config.json()["detail"]

    ok = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={
            "name": "Writer",
            "runtime_type": "http",
            "runtime_config": {"url": "http://agent.example:9/x"},
        },
    )
    assert ok.status_code == 201, ok.text
    dup = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={
            "name": "Writer",
            "runtime_type": "http",
            "runtime_config": {"url": "http://agent.example:9/x"},
        },
    )
    assert dup.status_code == 409
    # Nothing already stored was lost by the failed attempts.
    names = [a["name"] for a in (await client.get(f"/api/orgs/{org['id']}/agents")).json()]
    assert names.count("Writer") == 1


async def test_patch_agent(client: httpx.AsyncClient) -> None:
    _, agent = await default_org_and_agent(client)
    r = await client.patch(
        f"/api/agents/{agent['id']}", json={"title": "Helper", "status": "paused"}
    )
    assert r.status_code == 200
    assert r.json()["title"] == "Helper" and r.json()["status"] == "paused"
    bad = await client.patch(f"/api/agents/{agent['id']}", json={"status": "sleeping"})
    assert bad.status_code == 422
    unknown = await client.patch(f"/api/agents/{agent['id']}", json={"colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]


async def test_unknown_ids_are_404_with_error_body(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/agents/nope",
        "/api/conversations/nope",
        "/api/runs/nope",
        "/api/orgs/nope/agents",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found"


async def test_other_organization_is_invisible(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A token of another organization sees 404 for this organization's things, and vice versa."""
    org, agent = await default_org_and_agent(client)
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()

    async with services.sessions() as session, session.begin():
        stranger = User(email="stranger@example.com", name="Stranger")
        other = Organization(name="Other", slug="other")
        session.add_all([stranger, other])
        await session.flush()
        session.add(Membership(org_id=other.id, user_id=stranger.id, role="owner"))
        other_agent = Agent(
            org_id=other.id, name="Theirs", runtime_type="process", runtime_config={}
        )
        session.add(other_agent)
        await session.flush()
        _, token = await auth.issue_token(session, org_id=other.id, name="t", user_id=stranger.id)
        other_id, other_agent_id = other.id, other_agent.id

    headers = {"Authorization": f"Bearer {token}"}
    for path in (
        f"/api/orgs/{org['id']}/agents",
        f"/api/agents/{agent['id']}",
        f"/api/conversations/{conv['id']}",
        f"/api/conversations/{conv['id']}/messages",
        f"/api/orgs/{org['id']}/members",
    ):
        r = await client.get(path, headers=headers)
        assert r.status_code == 404, path
    r = await client.post(
        f"/api/conversations/{conv['id']}/messages", json={"body": "hi"}, headers=headers
    )
    assert r.status_code == 404
    assert [o["id"] for o in (await client.get("/api/orgs", headers=headers)).json()] == [other_id]
    # And the local owner cannot see the other organization either.
    assert (await client.get(f"/api/agents/{other_agent_id}")).status_code == 404
    assert (await client.get(f"/api/orgs/{other_id}/agents")).status_code == 404

    bad = await client.get("/api/orgs", headers={"Authorization": "Bearer rdr_wrong"})
    assert bad.status_code == 401


async def test_api_tokens_are_stored_hashed(client: httpx.AsyncClient, services: Services) -> None:
    org, _ = await default_org_and_agent(client)
    async with services.sessions() as session, session.begin():
        row, token = await auth.issue_token(session, org_id=org["id"], name="script")
    async with services.sessions() as session:
        stored = await session.scalar(select(ApiToken.token_hash).where(ApiToken.id == row.id))
    assert stored != token and token not in str(stored)
    assert stored == auth.token_hash(token)
