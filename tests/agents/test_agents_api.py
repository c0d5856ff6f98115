"""Agents in the JSON API: every field, every status transition, revisions, activity."""

from __future__ import annotations

import httpx
import pytest

from rudder.services import Services
from tests.agents.support import cost_runtime, make_agent, member_headers, other_org
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_run
from tests.routing.dialogue import connected_bot

FULL = {
    "name": "Researcher",
    "title": "Senior researcher",
    "role": "researcher",
    "capabilities": "Reads papers; writes summaries.",
    "instructions": "Answer in three sentences.",
    "runtime_type": "process",
    "budget_monthly_cents": 1500,
    "budget_warn_percent": 70,
    "budget_hard_stop": False,
}


async def test_create_accepts_every_field_and_returns_it(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    skill = await client.post(
        f"/api/orgs/{org['id']}/skills",
        json={"name": "summarize", "description": "Summaries", "instructions": "Be short."},
    )
    assert skill.status_code == 201, skill.text
    r = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={**FULL, "runtime_config": cost_runtime(), "skills": ["summarize"]},
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    for key, value in FULL.items():
        assert agent[key] == value, key
    assert agent["skills"] == ["summarize"]
    assert agent["status"] == "active" and agent["pause_reason"] is None
    assert agent["spent_monthly_cents"] == 0
    again = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert again == agent
    spec = (await client.get("/openapi.json")).json()
    props = spec["components"]["schemas"]["AgentIn"]["properties"]
    for key in (*FULL, "skills"):
        assert key in props, key
    for path in (
        "/api/agents/{agent_id}/pause",
        "/api/agents/{agent_id}/resume",
        "/api/agents/{agent_id}/archive",
        "/api/agents/{agent_id}/revisions",
        "/api/agents/{agent_id}/revisions/{rev}/rollback",
        "/api/orgs/{org_id}/activity",
        "/api/orgs/{org_id}/costs",
        "/api/orgs/{org_id}/skills",
        "/api/orgs/{org_id}/budget",
    ):
        assert path in spec["paths"], path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"skills": ["nope"]}, "skills"),
        ({"skills": "summarize"}, "skills"),
        ({"budget_monthly_cents": -1}, "budget_monthly_cents"),
        ({"budget_monthly_cents": "lots"}, "budget_monthly_cents"),
        ({"budget_warn_percent": 0}, "budget_warn_percent"),
        ({"budget_warn_percent": 101}, "budget_warn_percent"),
        ({"budget_hard_stop": "maybe"}, "budget_hard_stop"),
        ({"capabilities": 5}, "capabilities"),
        ({"title": "x" * 201}, "title"),
        ({"skillz": []}, "skillz"),
        ({"runtime_type": "telepathy"}, "runtime_type"),
    ],
)
async def test_bad_fields_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    org, agent = await default_org_and_agent(client)
    created = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Bad", "runtime_type": "process", "runtime_config": cost_runtime(), **body},
    )
    assert created.status_code == 422, created.text
    assert field in created.json()["detail"], created.json()
    patched = await client.patch(f"/api/agents/{agent['id']}", json=body)
    assert patched.status_code == 422, patched.text
    assert field in patched.json()["detail"], patched.json()
    # Nothing already stored is lost.
    assert (await client.get(f"/api/agents/{agent['id']}")).json() == {
        **agent,
        "spent_monthly_cents": 0,
    }


async def test_patch_edits_every_field_and_keeps_revisions(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(client, org["id"], "Editor")
    await client.post(
        f"/api/orgs/{org['id']}/skills",
        json={"name": "tone", "description": "Tone of voice", "instructions": "Warm."},
    )
    changes = {
        "title": "Chief editor",
        "role": "pm",
        "capabilities": "Edits.",
        "instructions": "Be kind.",
        "skills": ["tone"],
        "budget_monthly_cents": 999,
        "budget_warn_percent": 50,
        "budget_hard_stop": False,
        "runtime_config": cost_runtime(COST_USD="0.01"),
    }
    for key, value in changes.items():
        r = await client.patch(f"/api/agents/{agent['id']}", json={key: value})
        assert r.status_code == 200, r.text
        assert r.json()[key] == value
    revisions = (await client.get(f"/api/agents/{agent['id']}/revisions")).json()
    assert [r["rev"] for r in revisions] == list(range(len(changes) + 1, 0, -1))
    assert revisions[-1]["source"] == "create"
    assert [r["changed_keys"] for r in reversed(revisions[:-1])] == [[k] for k in changes]
    owner = (await client.get(f"/api/orgs/{org['id']}/members")).json()[0]
    assert all(r["actor"] == f"user:{owner['user_id']}" for r in revisions)
    title_rev = revisions[-2]
    assert title_rev["before_config"]["title"] is None
    assert title_rev["after_config"]["title"] == "Chief editor"
    # A PATCH that changes nothing is no revision.
    await client.patch(f"/api/agents/{agent['id']}", json={"title": "Chief editor"})
    assert len((await client.get(f"/api/agents/{agent['id']}/revisions")).json()) == len(revisions)

    # Roll back to the first revision: everything as created, kept as a new revision.
    back = await client.post(f"/api/agents/{agent['id']}/revisions/1/rollback")
    assert back.status_code == 200, back.text
    restored = back.json()
    assert restored["title"] is None and restored["skills"] == []
    assert restored["budget_monthly_cents"] == 0 and restored["role"] == "general"
    latest = (await client.get(f"/api/agents/{agent['id']}/revisions")).json()[0]
    assert latest["source"] == "rollback" and "title" in latest["changed_keys"]
    missing = await client.post(f"/api/agents/{agent['id']}/revisions/99/rollback")
    assert missing.status_code == 404


async def test_status_transitions(client: httpx.AsyncClient, services: Services) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(client, org["id"], "Status")
    aid = agent["id"]
    paused = (await client.post(f"/api/agents/{aid}/pause")).json()
    assert paused["status"] == "paused" and paused["pause_reason"] == "manual"
    assert paused["paused_at"]
    system = (await client.post(f"/api/agents/{aid}/pause", json={"reason": "system"})).json()
    assert system["pause_reason"] == "system"
    bad = await client.post(f"/api/agents/{aid}/pause", json={"reason": "budget"})
    assert bad.status_code == 422 and "reason" in bad.json()["detail"]
    # A paused agent's new message gets the paused notice instead of a run.
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": aid})
    ).json()
    msg = await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    run = await wait_run(client, msg.json()["run_id"])
    assert run["status"] == "failed" and "paused" in run["error"]
    resumed = (await client.post(f"/api/agents/{aid}/resume")).json()
    assert resumed["status"] == "active" and resumed["pause_reason"] is None
    # PATCH status goes through the same transitions.
    assert (await client.patch(f"/api/agents/{aid}", json={"status": "paused"})).json()[
        "status"
    ] == "paused"
    archived = await client.post(f"/api/agents/{aid}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "terminated" and archived.json()["terminated_at"]
    for action in ("resume", "pause"):
        r = await client.post(f"/api/agents/{aid}/{action}")
        assert r.status_code == 409, r.text
        assert "terminated" in r.json()["detail"]
    edit = await client.patch(f"/api/agents/{aid}", json={"title": "x"})
    assert edit.status_code == 409
    # History kept: the conversation and its run are still there.
    assert (await client.get(f"/api/conversations/{conv['id']}")).status_code == 200
    msg2 = await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "again"})
    run2 = await wait_run(client, msg2.json()["run_id"])
    assert run2["status"] == "failed" and "archived" in run2["error"]
    actions = [
        a["action"]
        for a in (await client.get(f"/api/orgs/{org['id']}/activity", params={"agent": aid})).json()
    ]
    for expected in ("agent.created", "agent.paused", "agent.resumed", "agent.archived"):
        assert expected in actions


async def test_another_orgs_ids_are_404(client: httpx.AsyncClient, services: Services) -> None:
    b = await other_org(services)
    aid, oid = b["agent_id"], b["org_id"]
    for method, path, body in (
        ("GET", f"/api/agents/{aid}", None),
        ("PATCH", f"/api/agents/{aid}", {"title": "x"}),
        ("POST", f"/api/agents/{aid}/pause", None),
        ("POST", f"/api/agents/{aid}/resume", None),
        ("POST", f"/api/agents/{aid}/archive", None),
        ("GET", f"/api/agents/{aid}/revisions", None),
        ("POST", f"/api/agents/{aid}/revisions/1/rollback", None),
        ("POST", f"/api/orgs/{oid}/agents", {"name": "x"}),
        ("GET", f"/api/orgs/{oid}/activity", None),
        ("GET", f"/api/orgs/{oid}/costs", None),
        ("GET", f"/api/orgs/{oid}/budget", None),
        ("PATCH", f"/api/orgs/{oid}/budget", {"budget_monthly_cents": 1}),
        ("GET", f"/api/orgs/{oid}/skills", None),
        ("POST", f"/api/orgs/{oid}/skills", {"name": "a", "description": "b"}),
        ("GET", f"/api/orgs/{oid}/model-prices", None),
    ):
        r = await client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    async with services.sessions() as session:
        from rudder.db.models import Agent

        agent = await session.get(Agent, aid)
        assert agent is not None and agent.status == "active" and agent.title is None


async def test_members_read_owners_and_admins_change_budgets(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(client, org["id"], "Budgeted")
    member = await member_headers(services, org["id"], "member")
    admin = await member_headers(services, org["id"], "admin")
    assert (await client.get(f"/api/agents/{agent['id']}", headers=member)).status_code == 200
    assert (await client.get(f"/api/orgs/{org['id']}/activity", headers=member)).status_code == 200
    for path, body in (
        (f"/api/agents/{agent['id']}", {"budget_monthly_cents": 5}),
        (f"/api/orgs/{org['id']}/budget", {"budget_monthly_cents": 5}),
    ):
        refused = await client.patch(path, json=body, headers=member)
        assert refused.status_code == 403, refused.text
        assert "budget" in refused.json()["detail"]
        allowed = await client.patch(path, json=body, headers=admin)
        assert allowed.status_code == 200, allowed.text
    created = await client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Rich", "budget_monthly_cents": 100},
        headers=member,
    )
    assert created.status_code == 403
    archive = await client.post(f"/api/agents/{agent['id']}/archive", headers=member)
    assert archive.status_code == 403


async def test_activity_filters(client: httpx.AsyncClient, services: Services) -> None:
    org, example = await default_org_and_agent(client)
    agent = await make_agent(client, org["id"], "Logged")
    await client.patch(f"/api/agents/{agent['id']}", json={"title": "T"})
    await client.put(
        f"/api/orgs/{org['id']}/secrets", json={"name": "API_KEY", "value": "sk-very-secret-1"}
    )
    base = f"/api/orgs/{org['id']}/activity"
    everything = (await client.get(base)).json()
    assert "sk-very-secret-1" not in str(everything)
    secret_row = next(a for a in everything if a["action"] == "secret.updated")
    assert secret_row["details"] == {"name": "API_KEY"}
    assert secret_row["actor_name"] == "Owner"
    by_agent = (await client.get(base, params={"agent": agent["id"]})).json()
    assert {a["action"] for a in by_agent} == {"agent.created", "agent.updated"}
    assert all(a["agent_id"] == agent["id"] for a in by_agent)
    by_action = (await client.get(base, params={"action": "agent."})).json()
    assert by_action and all(a["action"].startswith("agent.") for a in by_action)
    by_system = (await client.get(base, params={"actor": "system"})).json()
    assert [a["entity_id"] for a in by_system] == [example["id"]]
    by_email = (await client.get(base, params={"actor": "owner@localhost"})).json()
    assert by_email and all(a["actor"].startswith("user:") for a in by_email)
    newest = everything[0]["created_at"]
    assert (await client.get(base, params={"since": "2999-01-01T00:00:00Z"})).json() == []
    until = (await client.get(base, params={"until": "2000-01-01T00:00:00Z"})).json()
    assert until == []
    naive = await client.get(base, params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "since" in naive.json()["detail"]
    assert newest


async def test_archive_disconnects_the_bot_and_keeps_history(rig: FeishuRig) -> None:
    org = (await rig.client.get("/api/orgs")).json()[0]
    agent = await make_agent(rig.client, org["id"], "Retiring")
    agent, _ = await connected_bot(rig, agent)
    conv = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
        )
    ).json()
    msg = (
        await rig.client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "x"})
    ).json()
    await wait_run(rig.client, msg["run_id"])
    archived = await rig.client.post(f"/api/agents/{agent['id']}/archive")
    assert archived.status_code == 200 and archived.json()["status"] == "terminated"
    feishu = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert feishu["status"] == "disconnected", feishu
    # The activity of the agent includes its bot's.
    actions = [
        a["action"]
        for a in (
            await rig.client.get(f"/api/orgs/{org['id']}/activity", params={"agent": agent["id"]})
        ).json()
    ]
    assert "agent.archived" in actions and "feishu.disconnected" in actions
    runs = (await rig.client.get(f"/api/agents/{agent['id']}/runs")).json()
    assert [r["id"] for r in runs] == [msg["run_id"]]
    assert len((await rig.client.get(f"/api/conversations/{conv['id']}/messages")).json()) == 2
