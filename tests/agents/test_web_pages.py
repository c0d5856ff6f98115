"""The agent pages over HTTP: New Agent with a runtime form and Test runtime, the tabs,
Skills, Costs, Activity and Messenger's attention threads — and no inline script anywhere."""

from __future__ import annotations

import re
import sys

import httpx

from rudder import texts
from rudder.services import Services
from tests.agents.support import COST_AGENT, make_agent, member_headers
from tests.helpers import default_org_and_agent, wait_run
from tests.web.conftest import e

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def _no_inline_js(html: str, page: str) -> None:
    assert not INLINE_SCRIPT.search(html), page
    # base.html's org switcher still has one handler (being removed elsewhere); ours have none.
    body = html.replace('onchange="this.form.submit()"', "")
    assert not INLINE_HANDLER.search(body), page


def _new_agent_form(name: str, **extra: str) -> dict[str, str]:
    return {
        "name": name,
        "title": "Support lead",
        "role": "engineer",
        "capabilities": "Answers tickets.",
        "instructions": "Be brief.",
        "runtime_type": "process",
        "rt.process.command": sys.executable,
        "rt.process.args": COST_AGENT,
        "rt.process.env.0.name": "API_TOKEN",
        "rt.process.env.0.value": "",
        "rt.process.env.0.secret": "SUPPORT_TOKEN",
        "rt.process.env.1.name": "COST_USD",
        "rt.process.env.1.value": "0.25",
        "rt.process.env.1.secret": "",
        "rt.process.timeout_sec": "60",
        "budget": "12.50",
        "warn": "75",
        "hard_stop": "on",
        **extra,
    }


async def test_new_agent_page_creates_an_agent_with_every_field(
    client: httpx.AsyncClient,
) -> None:
    org, _ = await default_org_and_agent(client)
    await client.put(
        f"/api/orgs/{org['id']}/secrets", json={"name": "SUPPORT_TOKEN", "value": "tok-123456789"}
    )
    await client.post(
        f"/api/orgs/{org['id']}/skills",
        json={"name": "triage", "description": "Sort tickets.", "instructions": "By urgency."},
    )
    page = await client.get("/agents/new")
    assert page.status_code == 200
    _no_inline_js(page.text, "/agents/new")
    for runtime in ("process", "http", "openai", "claude_local", "codex_local"):
        assert f'data-runtime-section="{runtime}"' in page.text
    assert "SUPPORT_TOKEN" in page.text and "triage" in page.text
    assert "tok-123456789" not in page.text

    form = _new_agent_form("Helper")
    checked = await client.post("/agents/check", data=form)
    assert checked.status_code == 200
    assert 'data-check="config"' in checked.text and 'data-level="pass"' in checked.text
    assert "Ready" in checked.text

    missing = await client.post("/agents/new", data={**form, "rt.process.command": ""})
    assert missing.status_code == 422 and "command" in missing.text
    assert 'value="Helper"' in missing.text  # what was typed is kept

    created = await client.post("/agents/new", data={**form, "skills": "triage"})
    assert created.status_code == 303, created.text
    agent_id = created.headers["location"].split("/")[2]
    agent = (await client.get(f"/api/agents/{agent_id}")).json()
    assert agent["title"] == "Support lead" and agent["role"] == "engineer"
    assert agent["capabilities"] == "Answers tickets." and agent["instructions"] == "Be brief."
    assert agent["skills"] == ["triage"]
    assert agent["budget_monthly_cents"] == 1250 and agent["budget_warn_percent"] == 75
    assert agent["runtime_config"]["env"] == {
        "API_TOKEN": {"secret": "SUPPORT_TOKEN"},
        "COST_USD": "0.25",
    }
    assert agent["runtime_config"]["args"] == [COST_AGENT]
    profile = await client.get(created.headers["location"])
    assert "Created." in profile.text


async def test_test_runtime_is_for_owners_and_admins(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    member = await member_headers(services, org["id"])
    refused = await client.post("/agents/check", data=_new_agent_form("X"), headers=member)
    assert "only owners and admins" in refused.text and "data-check" not in refused.text


async def test_agent_tabs_edit_everything(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    await client.post(
        f"/api/orgs/{org['id']}/skills",
        json={"name": "tone", "description": "Tone.", "instructions": "Warm."},
    )
    agent = await make_agent(client, org["id"], "Tabby")
    aid = agent["id"]
    for tab in ("profile", "instructions", "skills", "configuration", "budget", "runs"):
        page = await client.get(f"/agents/{aid}/{tab}")
        assert page.status_code == 200, tab
        _no_inline_js(page.text, tab)
        for label in ("Profile", "Instructions", "Skills", "Configuration", "Budget", "Runs"):
            assert f">{label}</a>" in page.text
    steps = [
        ("profile", {"name": "Tabby", "title": "Cat", "role": "qa", "capabilities": "Naps"}),
        ("instructions", {"instructions": "Purr."}),
        ("skills", {"skills": "tone"}),
        ("budget", {"budget": "3", "warn": "90", "hard_stop": "on"}),
    ]
    for tab, data in steps:
        r = await client.post(f"/agents/{aid}/{tab}", data=data)
        assert r.status_code == 303, (tab, r.text)
    now = (await client.get(f"/api/agents/{aid}")).json()
    assert (now["title"], now["role"], now["capabilities"]) == ("Cat", "qa", "Naps")
    assert now["instructions"] == "Purr." and now["skills"] == ["tone"]
    assert now["budget_monthly_cents"] == 300 and now["budget_warn_percent"] == 90
    bad = await client.post(f"/agents/{aid}/budget", data={"budget": "lots", "warn": "80"})
    assert bad.status_code == 422 and "budget_monthly_cents" in bad.text

    config = await client.post(
        f"/agents/{aid}/configuration",
        data={
            "runtime_type": "http",
            "rt.http.url": "http://agent.example:9/agent",
            "rt.http.headers.0.name": "X-Team",
            "rt.http.headers.0.value": "blue",
        },
    )
    assert config.status_code == 303, config.text
    now = (await client.get(f"/api/agents/{aid}")).json()
    assert now["runtime_type"] == "http"
    assert now["runtime_config"]["headers"] == {"X-Team": "blue"}
    page = await client.get(f"/agents/{aid}/configuration")
    assert 'value="http://agent.example:9/agent"' in page.text and "Roll back to this" in page.text
    revisions = (await client.get(f"/api/agents/{aid}/revisions")).json()
    first_runtime = next(r["rev"] for r in revisions if r["source"] == "create")
    back = await client.post(f"/agents/{aid}/revisions/{first_runtime}/rollback")
    assert back.status_code == 303
    assert (await client.get(f"/api/agents/{aid}")).json()["runtime_type"] == "process"

    paused = await client.post(f"/agents/{aid}/status", data={"action": "pause"})
    assert paused.status_code == 303
    page = await client.get(f"/agents/{aid}/profile")
    assert "paused · manual" in page.text
    await client.post(f"/agents/{aid}/status", data={"action": "resume"})
    assert (await client.get(f"/api/agents/{aid}")).json()["status"] == "active"


async def test_skills_costs_activity_pages(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    made = await client.post(
        "/skills",
        data={"name": "summaries", "description": "Summarize.", "instructions": "Short."},
    )
    assert made.status_code == 303
    bad = await client.post("/skills", data={"name": "Bad Name", "description": "x"})
    assert bad.status_code == 422 and "name" in bad.text
    library = await client.get("/skills")
    assert "summaries" in library.text
    _no_inline_js(library.text, "/skills")

    agent = await make_agent(client, org["id"], "Costly", budget_monthly_cents=10_000)
    await client.patch(
        f"/api/agents/{agent['id']}",
        json={"runtime_config": {**agent["runtime_config"], "env": {"COST_USD": "1.25"}}},
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    msg = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    ).json()
    await wait_run(client, msg["run_id"])
    costs = await client.get("/costs")
    assert costs.status_code == 200 and "<svg" in costs.text and "$1.25" in costs.text
    assert 'data-testid="cost-chart"' in costs.text
    _no_inline_js(costs.text, "/costs")
    act = await client.get("/activity", params={"agent": agent["id"]})
    assert "agent.created" in act.text and "agent.updated" in act.text
    assert "skill.created" not in act.text  # filtered to the agent
    everything = await client.get("/activity")
    assert "skill.created" in everything.text
    saved = await client.post(
        "/costs/budget", data={"budget": "40", "warn": "90", "hard_stop": "on"}
    )
    assert saved.status_code == 303
    budget = (await client.get(f"/api/orgs/{org['id']}/budget")).json()
    assert budget["budget_monthly_cents"] == 4000 and budget["budget_warn_percent"] == 90
    bad_budget = await client.post("/costs/budget", data={"budget": "x"})
    assert bad_budget.status_code == 422 and "budget_monthly_cents" in bad_budget.text
    price = await client.post(
        "/costs/prices",
        data={"model": "house-1", "input_usd_per_mtok": "1", "output_usd_per_mtok": "2"},
    )
    assert price.status_code == 303
    table = (await client.get(f"/api/orgs/{org['id']}/model-prices")).json()
    assert table[0]["model"] == "house-1" and table[0]["output_usd_per_mtok"] == 2.0
    bad_price = await client.post("/costs/prices", data={"model": "m", "input_usd_per_mtok": "-1"})
    assert bad_price.status_code == 422 and "input_usd_per_mtok" in bad_price.text
    bad_time = await client.get("/activity", params={"since": "yesterday"})
    assert "since" in bad_time.text


async def test_messenger_shows_failed_runs_and_budget_alerts(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    failing = await make_agent(client, org["id"], "Broken")
    await client.patch(
        f"/api/agents/{failing['id']}",
        json={"runtime_config": {**failing["runtime_config"], "env": {"FAIL": "model offline"}}},
    )
    spender = await make_agent(client, org["id"], "Spender", budget_monthly_cents=100)
    await client.patch(
        f"/api/agents/{spender['id']}",
        json={"runtime_config": {**spender["runtime_config"], "env": {"COST_USD": "2"}}},
    )
    assert 'data-thread="failed-runs"' not in (await client.get("/messenger/attention")).text
    for agent in (failing, spender):
        conv = (
            await client.post(
                f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
            )
        ).json()
        msg = (
            await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "go"})
        ).json()
        await wait_run(client, msg["run_id"])
        spender_conv = conv["id"]
    panel = (await client.get("/messenger/attention")).text
    assert 'data-thread="failed-runs"' in panel and 'data-thread="budget-alerts"' in panel
    failed = await client.get("/messenger/system/failed-runs")
    assert "model offline" in failed.text and f"/agents/{failing['id']}/runs/" in failed.text
    alerts = await client.get("/messenger/system/budget-alerts")
    assert "budget reached: paused" in alerts.text
    assert f"/agents/{spender['id']}/budget" in alerts.text
    held_page = await client.get(f"/messenger/{spender_conv}")
    assert 'data-testid="budget-held"' in held_page.text
    page = await client.get("/messenger")
    assert 'data-live-url="/messenger/live"' in page.text
    # Each conversation shows a preview of its last message.
    assert 'data-testid="preview"' in page.text and "You: go" in page.text
    _no_inline_js(page.text.replace(e(texts.WEB_NO_CONVERSATIONS), ""), "/messenger")


async def test_form_numbers_out_of_range_are_refused(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    for extra, field in (
        ({"budget": "inf"}, "budget_monthly_cents"),
        ({"budget": "nan"}, "budget_monthly_cents"),
        ({"budget": "99999999999"}, "budget_monthly_cents"),
        ({"rt.process.timeout_sec": "inf"}, "timeout_sec"),
    ):
        r = await client.post("/agents/new", data=_new_agent_form("Edge", **extra))
        assert r.status_code == 422, (extra, r.text[:300])
        assert field in r.text, extra
    api = await client.post(
        f"/api/orgs/{org['id']}/agents", json={"name": "Big", "budget_monthly_cents": 2**31}
    )
    assert api.status_code == 422 and "budget_monthly_cents" in api.json()["detail"]
    assert [a["name"] for a in (await client.get(f"/api/orgs/{org['id']}/agents")).json()] == [
        "Example Agent"
    ]
