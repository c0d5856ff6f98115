"""Budgets: a member or an agent token cannot get a budget-stopped agent answering again, by
any route — raise or remove the budget, switch the hard stop off, resume it, PATCH its status,
roll back to a revision without a budget, lower the organization's budget, make runs free."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from rudder.domain import auth, orgs
from rudder.services import Services
from tests.helpers import default_org_and_agent, wait_run
from tests.hostile.conftest import count

COST_AGENT = str(Path(__file__).parents[1] / "agents" / "cost_agent.py")


async def _tokens(services: Services, org_id: str, agent_id: str) -> dict[str, str]:
    async with services.sessions() as session, session.begin():
        _, user = await orgs.add_member(session, org_id, "m@a.test", "M", "member", "test")
        await session.flush()
        _, member = await auth.issue_token(session, org_id=org_id, name="m", user_id=user.id)
        _, agent = await auth.issue_token(session, org_id=org_id, name="a", agent_id=agent_id)
    return {"member": member, "agent": agent}


async def test_nobody_but_an_admin_lifts_a_hard_stop(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    runtime = {"command": sys.executable, "args": [COST_AGENT], "env": {"COST_USD": "2"}}
    created = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Metered", "runtime_type": "process", "runtime_config": runtime},
    )
    agent = created.json()
    # Rev 2 sets the budget: rev 1 (no budget) is the rollback an attacker would want.
    await client.patch(f"/api/agents/{agent['id']}", json={"budget_monthly_cents": 100})
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    first = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "a"})
    ).json()
    await wait_run(client, first["run_id"])
    held = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "b"})
    ).json()
    assert (await client.get(f"/api/runs/{held['run_id']}")).json()["status"] == "held"
    tokens = await _tokens(services, org["id"], agent["id"])

    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"/api/agents/{agent['id']}", {"budget_monthly_cents": 1_000_000}),
        ("PATCH", f"/api/agents/{agent['id']}", {"budget_monthly_cents": 0}),
        ("PATCH", f"/api/agents/{agent['id']}", {"budget_hard_stop": False}),
        ("PATCH", f"/api/agents/{agent['id']}", {"budget_warn_percent": 100, "status": "active"}),
        ("PATCH", f"/api/agents/{agent['id']}", {"status": "active"}),
        ("POST", f"/api/agents/{agent['id']}/resume", None),
        ("POST", f"/api/agents/{agent['id']}/revisions/1/rollback", None),
        ("PATCH", f"/api/orgs/{org['id']}/budget", {"budget_monthly_cents": 0}),
        (
            "PUT",
            f"/api/orgs/{org['id']}/model-prices/any",
            {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0},
        ),
    ]
    wrong: list[str] = []
    for who, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        for method, path, body in attempts:
            count("budget bypass attempts by members and agent tokens")
            r = await client.request(method, path, json=body, headers=headers)
            if r.status_code in (403, 409):
                count("budget bypass attempts refused")
            else:
                wrong.append(f"{who} {method} {path} {body}: {r.status_code} {r.text[:120]}")
        # The web form too.
        count("budget bypass attempts by members and agent tokens")
        page = await client.post(
            f"/agents/{agent['id']}/budget", data={"budget": "999", "warn": "80"}, headers=headers
        )
        # A member sees the form's reason; an agent token may not use pages at all (403).
        if (page.status_code == 422 and "only owners and admins" in page.text) or (
            who == "agent" and page.status_code == 403
        ):
            count("budget bypass attempts refused")
        else:
            wrong.append(f"{who} web budget form: {page.status_code}")
    assert not wrong, "\n".join(wrong)
    # An owner cannot simply resume either: the budget must be raised first.
    assert (await client.post(f"/api/agents/{agent['id']}/resume")).status_code == 409
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert after["status"] == "paused" and after["pause_reason"] == "budget"
    assert after["budget_monthly_cents"] == 100 and after["budget_hard_stop"] is True
    assert (await client.get(f"/api/runs/{held['run_id']}")).json()["status"] == "held"
