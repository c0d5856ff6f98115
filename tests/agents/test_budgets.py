"""Budgets: per-run cost, the warning, the hard stop, held messages, raise and new month."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from rudder import agent_control, texts
from rudder.db.models import Run
from rudder.domain import budgets
from rudder.services import Services
from tests.agents.support import cost_runtime, make_agent
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for, wait_run
from tests.routing.dialogue import (
    activity,
    bind,
    bot_texts,
    connected_bot,
    dm,
    person,
    say,
    wait_prompt,
)


async def _send(client: httpx.AsyncClient, conv_id: str, body: str) -> dict[str, object]:
    r = await client.post(f"/api/conversations/{conv_id}/messages", json={"body": body})
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def _incidents(client: httpx.AsyncClient, org_id: str) -> list[dict[str, object]]:
    return list((await client.get(f"/api/orgs/{org_id}/budget-incidents")).json())


async def test_warning_then_hard_stop_then_raise(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(
        client,
        org["id"],
        "Spender",
        runtime_config=cost_runtime(COST_USD="0.45"),
        budget_monthly_cents=100,
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    first = await wait_run(client, (await _send(client, conv["id"], "one"))["run_id"])  # type: ignore[arg-type]
    # Per run, not cumulative: each run costs what it reported.
    assert first["cost_usd"] == 0.45 and first["status"] == "succeeded"
    assert await _incidents(client, org["id"]) == []
    await wait_run(client, (await _send(client, conv["id"], "two"))["run_id"])  # type: ignore[arg-type]
    warning = await _incidents(client, org["id"])
    assert [(i["kind"], i["spent_cents"]) for i in warning] == [("warning", 90)]
    assert (await client.get(f"/api/agents/{agent['id']}")).json()["status"] == "active"

    await wait_run(client, (await _send(client, conv["id"], "three"))["run_id"])  # type: ignore[arg-type]
    stopped = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert stopped["status"] == "paused" and stopped["pause_reason"] == "budget"
    assert stopped["spent_monthly_cents"] == 135
    kinds = sorted(str(i["kind"]) for i in await _incidents(client, org["id"]))
    assert kinds == ["hard_stop", "warning"]

    # Later messages are held, not lost, and not answered yet.
    held = await _send(client, conv["id"], "four")
    run = (await client.get(f"/api/runs/{held['run_id']}")).json()
    assert run["status"] == "held"
    refused = await client.post(f"/api/agents/{agent['id']}/resume")
    assert refused.status_code == 409 and "raise the budget" in refused.json()["detail"]

    # Raising the budget resumes the agent and answers the held message.
    raised = await client.patch(f"/api/agents/{agent['id']}", json={"budget_monthly_cents": 1000})
    assert raised.status_code == 200, raised.text
    assert raised.json()["status"] == "active"
    answered = await wait_run(client, str(held["run_id"]))
    assert answered["status"] == "succeeded"
    bodies = [
        m["body"] for m in (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    ]
    assert "echo: four" in bodies
    assert await _incidents(client, org["id"]) == []  # resolved by the raise

    costs = (await client.get(f"/api/orgs/{org['id']}/costs", params={"months": 2})).json()
    row = next(r for r in costs["rows"] if r["agent_id"] == agent["id"])
    assert row["runs"] == 4 and row["cost_cents"] == 180
    assert costs["total_cents_by_month"][budgets.month_of()] == 180


async def test_cost_from_tokens_and_the_price_table(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    price = await client.put(
        f"/api/orgs/{org['id']}/model-prices/house-model-1",
        json={"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
    )
    assert price.status_code == 200, price.text
    table = (await client.get(f"/api/orgs/{org['id']}/model-prices")).json()
    assert {"model": "house-model-1", "source": "organization"}.items() <= table[0].items()
    agent = await make_agent(
        client,
        org["id"],
        "Tokens",
        runtime_config=cost_runtime(TOKENS="500000", MODEL="house-model-1-2026"),
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    for _ in range(2):
        run = await wait_run(client, (await _send(client, conv["id"], "x"))["run_id"])  # type: ignore[arg-type]
        # 0.5M in × $1 + 0.5M out × $2 = $1.50 each run (not the sum so far).
        assert run["cost_usd"] == 1.5
    costs = (await client.get(f"/api/orgs/{org['id']}/costs")).json()
    row = next(r for r in costs["rows"] if r["agent_id"] == agent["id"])
    assert row["input_tokens"] == 1_000_000 and row["cost_cents"] == 300
    bad = await client.put(f"/api/orgs/{org['id']}/model-prices/x", json={"input_usd_per_mtok": -1})
    assert bad.status_code == 422 and "input_usd_per_mtok" in bad.json()["detail"]


async def test_org_budget_pauses_every_agent_and_a_new_month_resumes(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    a = await make_agent(client, org["id"], "A", runtime_config=cost_runtime(COST_USD="0.30"))
    b = await make_agent(client, org["id"], "B", runtime_config=cost_runtime(COST_USD="0.30"))
    r = await client.patch(f"/api/orgs/{org['id']}/budget", json={"budget_monthly_cents": 50})
    assert r.status_code == 200 and r.json()["budget_monthly_cents"] == 50
    conv_a = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": a["id"]})
    ).json()
    conv_b = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": b["id"]})
    ).json()
    await wait_run(client, (await _send(client, conv_a["id"], "1"))["run_id"])  # type: ignore[arg-type]
    await wait_run(client, (await _send(client, conv_b["id"], "2"))["run_id"])  # type: ignore[arg-type]
    for agent in (a, b):
        now = (await client.get(f"/api/agents/{agent['id']}")).json()
        assert now["status"] == "paused" and now["pause_reason"] == "budget", now
    held = await _send(client, conv_a["id"], "held over the month end")
    assert (await client.get(f"/api/runs/{held['run_id']}")).json()["status"] == "held"

    # A new month: this month's runs now belong to the last one; the sweep resumes everyone.
    async with services.sessions() as session:
        for run in await session.scalars(
            select(Run).where(Run.org_id == org["id"], Run.finished_at.is_not(None))
        ):
            assert run.finished_at is not None
            run.finished_at = run.finished_at - timedelta(days=32)
        await session.commit()
    await agent_control.sweep(services)
    for agent in (a, b):
        assert (await client.get(f"/api/agents/{agent['id']}")).json()["status"] == "active"
    assert (await wait_run(client, str(held["run_id"])))["status"] == "succeeded"


async def test_hard_stop_stops_the_agents_runs_in_progress(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(
        client,
        org["id"],
        "Busy",
        runtime_config=cost_runtime(COST_USD="1.50"),
        budget_monthly_cents=100,
    )
    convs = [
        (
            await client.post(
                f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
            )
        ).json()
        for _ in range(2)
    ]
    slow = await _send(client, convs[0]["id"], "a slow one")

    async def running() -> bool:
        run = (await client.get(f"/api/runs/{slow['run_id']}")).json()
        return bool(run["status"] == "running")

    await wait_for(running, timeout=10)
    fast = await wait_run(client, (await _send(client, convs[1]["id"], "quick"))["run_id"])  # type: ignore[arg-type]
    assert fast["status"] == "succeeded"
    stopped = await wait_run(client, str(slow["run_id"]), timeout=15)
    assert stopped["status"] == "cancelled"
    assert (await client.get(f"/api/agents/{agent['id']}")).json()["pause_reason"] == "budget"


async def test_a_budget_lowered_below_the_spend_stops_the_next_run(
    client: httpx.AsyncClient,
) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(
        client, org["id"], "Lowered", runtime_config=cost_runtime(COST_USD="2")
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    await wait_run(client, (await _send(client, conv["id"], "x"))["run_id"])  # type: ignore[arg-type]
    lowered = await client.patch(f"/api/agents/{agent['id']}", json={"budget_monthly_cents": 100})
    assert lowered.json()["status"] == "active"  # nothing runs until the next message
    held = await _send(client, conv["id"], "y")

    async def is_held() -> bool:
        run = (await client.get(f"/api/runs/{held['run_id']}")).json()
        return bool(run["status"] == "held")

    await wait_for(is_held, timeout=10)
    now = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert now["status"] == "paused" and now["pause_reason"] == "budget"
    await client.patch(f"/api/agents/{agent['id']}", json={"budget_monthly_cents": 1000})
    assert (await wait_run(client, str(held["run_id"])))["status"] == "succeeded"


async def test_hard_stop_off_only_alerts(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    agent = await make_agent(
        client,
        org["id"],
        "Soft",
        runtime_config=cost_runtime(COST_USD="2"),
        budget_monthly_cents=100,
        budget_hard_stop=False,
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    await wait_run(client, (await _send(client, conv["id"], "x"))["run_id"])  # type: ignore[arg-type]
    assert (await client.get(f"/api/agents/{agent['id']}")).json()["status"] == "active"
    assert [i["kind"] for i in await _incidents(client, org["id"])] == ["exceeded"]


async def test_feishu_chat_over_the_hard_stop(rig: FeishuRig) -> None:
    """A Feishu conversation drives an agent over its hard stop: the agent pauses, the chat
    gets one notice, and the held message is answered once the budget is raised."""
    org = (await rig.client.get("/api/orgs")).json()[0]
    agent = await make_agent(
        rig.client,
        org["id"],
        "Metered",
        runtime_config=cost_runtime(COST_USD="0.60"),
        budget_monthly_cents=100,
    )
    agent, app = await connected_bot(rig, agent)
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)
    await say(rig, chat, ada, "hello")
    await wait_prompt(rig, chat)
    # Until Ada uses her link, Messenger lists her as waiting, linking to the bot's tab.
    waiting = await rig.client.get("/messenger/system/feishu-users")
    assert f"/agents/{agent['id']}/integrations" in waiting.text
    assert 'data-thread="feishu-users"' in (await rig.client.get("/messenger/attention")).text
    await bind(rig, chat)
    assert 'data-thread="feishu-users"' not in (await rig.client.get("/messenger/attention")).text

    async def said(text: str) -> bool:
        return any(text in t for t in await bot_texts(rig, chat))

    await say(rig, chat, ada, "first question")
    await wait_for(lambda: said("echo: first question"), timeout=15)
    await say(rig, chat, ada, "second question")
    await wait_for(lambda: said("echo: second question"), timeout=15)

    async def paused() -> bool:
        now = (await rig.client.get(f"/api/agents/{agent['id']}")).json()
        return bool(now["status"] == "paused" and now["pause_reason"] == "budget")

    await wait_for(paused, timeout=10)
    notice = texts.AGENT_BUDGET_HELD.format(agent="Metered")
    await say(rig, chat, ada, "third question")
    await wait_for(lambda: said(notice), timeout=10)
    await say(rig, chat, ada, "fourth question")
    rows = await activity(rig, agent["id"], 5)
    assert [r["outcome"] for r in rows[:2]] == ["held", "held"]
    texts_now = await bot_texts(rig, chat)
    assert sum(notice in t for t in texts_now) == 1  # one notice, not one per message
    assert not any("echo: third" in t for t in texts_now)

    raised = await rig.client.patch(
        f"/api/agents/{agent['id']}", json={"budget_monthly_cents": 10_000}
    )
    assert raised.status_code == 200 and raised.json()["status"] == "active"
    await wait_for(lambda: said("echo: third question"), timeout=15)
    await wait_for(lambda: said("echo: fourth question"), timeout=15)
    final = await bot_texts(rig, chat)
    assert sum(notice in t for t in final) == 1
    # Answered in order.
    third = next(i for i, t in enumerate(final) if "echo: third question" in t)
    fourth = next(i for i, t in enumerate(final) if "echo: fourth question" in t)
    assert third < fourth
