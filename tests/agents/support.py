"""Helpers of the agent tests: a process agent with a cost, another org, a member's token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from rudder.db.models import Membership
from rudder.domain import agents as agents_domain
from rudder.domain import auth, orgs
from rudder.services import Services

COST_AGENT = str(Path(__file__).with_name("cost_agent.py"))


def cost_runtime(**env: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [COST_AGENT], "env": dict(env)}


async def make_agent(
    client: httpx.AsyncClient, org_id: str, name: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "runtime_type": "process", "runtime_config": cost_runtime()}
    body.update(fields)
    r = await client.post(f"/api/orgs/{org_id}/agents", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def other_org(services: Services) -> dict[str, str]:
    """An organization the local owner is not a member of, with an agent and a skill."""
    async with services.sessions() as session:
        stranger = await orgs.ensure_user(session, "mallory@b.test", "Mallory")
        org_b = await orgs.create_org(session, "Org B", stranger)
        agent_b = await agents_domain.create_agent(
            session,
            org_b.id,
            name="B bot",
            runtime_type="process",
            runtime_config=cost_runtime(),
            actor="test",
        )
        await session.commit()
        return {"org_id": org_b.id, "agent_id": agent_b.id}


async def member_headers(services: Services, org_id: str, role: str = "member") -> dict[str, str]:
    async with services.sessions() as session:
        user = await orgs.ensure_user(session, f"{role}@a.test", role.title())
        session.add(Membership(org_id=org_id, user_id=user.id, role=role))
        await session.flush()
        _, token = await auth.issue_token(session, org_id=org_id, name=role, user_id=user.id)
        await session.commit()
    return {"Authorization": f"Bearer {token}"}
