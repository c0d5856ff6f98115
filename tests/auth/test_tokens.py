"""API tokens: shown once, stored as a hash, listed without secrets, revocable, org-scoped."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from rudder.db.models import ApiToken
from rudder.domain import auth
from tests.auth.conftest import People, login


async def test_create_list_use_and_revoke_a_token(
    client: httpx.AsyncClient, people: People, app: FastAPI
) -> None:
    assert (await login(client, people.max)).status_code == 200
    r = await client.post(f"/api/orgs/{people.org_id}/api-tokens", json={"name": "laptop"})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["token"]
    assert secret.startswith(auth.TOKEN_PREFIX)
    assert created["name"] == "laptop" and created["revoked_at"] is None

    async with app.state.services.sessions() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.id == created["id"]))
    assert row is not None
    assert row.token_hash == auth.token_hash(secret)
    assert secret not in repr([getattr(row, c.key) for c in ApiToken.__table__.columns])

    listed = await client.get(f"/api/orgs/{people.org_id}/api-tokens")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [created["id"]]
    assert "token" not in listed.json()[0] and secret not in listed.text
    assert "token_hash" not in listed.json()[0]

    bearer = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://rudder.test"
    )
    async with bearer:
        headers = {"Authorization": f"Bearer {secret}"}
        me = (await bearer.get("/api/auth/me", headers=headers)).json()
        assert me["email"] == people.max
        assert (await bearer.get(f"/api/orgs/{people.org_id}/agents", headers=headers)).is_success
        # The token acts inside its own organization only.
        assert (
            await bearer.get(f"/api/orgs/{people.other_org_id}", headers=headers)
        ).status_code == 404

        r = await client.delete(f"/api/api-tokens/{created['id']}")
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        assert (await bearer.get("/api/auth/me", headers=headers)).status_code == 401


async def test_members_see_their_own_tokens_and_owners_see_all(
    client: httpx.AsyncClient, people: People
) -> None:
    path = f"/api/orgs/{people.org_id}/api-tokens"
    await login(client, people.max)
    max_token = (await client.post(path, json={"name": "max"})).json()
    await login(client, people.ada)
    ada_token = (await client.post(path, json={"name": "ada"})).json()
    assert {t["name"] for t in (await client.get(path)).json()} == {"max", "ada"}

    await login(client, people.max)
    assert [t["name"] for t in (await client.get(path)).json()] == ["max"]
    # Max cannot revoke Ada's token, and is not told it exists.
    assert (await client.delete(f"/api/api-tokens/{ada_token['id']}")).status_code == 404
    await login(client, people.ada)
    assert (await client.delete(f"/api/api-tokens/{max_token['id']}")).status_code == 200


async def test_agent_tokens_are_for_owners_and_admins_and_act_as_the_agent(
    client: httpx.AsyncClient, people: People
) -> None:
    path = f"/api/orgs/{people.org_id}/api-tokens"
    await login(client, people.max)
    r = await client.post(path, json={"name": "bot", "agent_id": people.agent_id})
    assert r.status_code == 403
    await login(client, people.ada)
    r = await client.post(path, json={"name": "bot", "agent_id": people.other_agent_id})
    assert r.status_code == 404  # another organization's agent
    r = await client.post(path, json={"name": "bot", "agent_id": people.agent_id})
    assert r.status_code == 201
    created = r.json()
    assert created["agent_id"] == people.agent_id and created["user_id"] is None
    headers = {"Authorization": f"Bearer {created['token']}"}
    me = (await client.get("/api/auth/me", headers=headers)).json()
    assert me["agent_id"] == people.agent_id and me["user_id"] is None
    assert [o["id"] for o in me["orgs"]] == [people.org_id]
    # An agent's token cannot mint more tokens.
    assert (await client.post(path, json={"name": "more"}, headers=headers)).status_code == 403


async def test_another_organizations_member_cannot_touch_this_organizations_tokens(
    client: httpx.AsyncClient, people: People
) -> None:
    await login(client, people.ada)
    token = (
        await client.post(f"/api/orgs/{people.org_id}/api-tokens", json={"name": "ada"})
    ).json()
    await login(client, people.bob)
    assert (await client.get(f"/api/orgs/{people.org_id}/api-tokens")).status_code == 404
    assert (await client.delete(f"/api/api-tokens/{token['id']}")).status_code == 404
    assert (await client.delete("/api/api-tokens/no-such-token")).status_code == 404
