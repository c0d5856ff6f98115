"""In Chromium: create an agent from New Agent with a runtime, test it, give it a skill and a
budget; then watch a failed run and a budget alert appear in Messenger without a reload."""

from __future__ import annotations

import sys

import pytest
from playwright.async_api import expect

from tests.agents.support import COST_AGENT, cost_runtime
from tests.helpers import wait_run
from tests.web.conftest import first_agent
from tests.web.test_browser import Live, live

pytestmark = pytest.mark.e2e
__all__ = ["live"]


async def test_new_agent_skill_budget_and_messenger_attention(live: Live) -> None:
    org_id, _ = await first_agent(live.api)
    page = live.page

    # A skill for the library, from the Skills page.
    await page.goto(live.url + "/skills")
    await page.get_by_test_id("skill-name").fill("triage")
    await page.get_by_test_id("skill-description").fill("Sort incoming tickets by urgency.")
    await page.get_by_test_id("skill-instructions").fill("Urgent first, then the rest.")
    await page.get_by_test_id("create-skill").click()
    await expect(page.locator('tr[data-skill="triage"]')).to_be_visible()

    # New Agent: profile, a process runtime, Test runtime, the skill and a budget.
    await page.goto(live.url + "/agents")
    await page.get_by_test_id("new-agent").click()
    await page.get_by_test_id("name").fill("Triage bot")
    await page.get_by_test_id("title").fill("Support lead")
    await page.get_by_test_id("capabilities").fill("Sorts tickets.")
    await page.get_by_test_id("instructions").fill("Be brief.")
    await page.get_by_test_id("runtime-type").select_option("http")
    await expect(page.get_by_test_id("http-url")).to_be_visible()
    await expect(page.get_by_test_id("process-command")).to_be_hidden()
    await page.get_by_test_id("runtime-type").select_option("process")
    await page.get_by_test_id("process-command").fill(sys.executable)
    await page.get_by_test_id("process-args").fill(COST_AGENT)
    await page.locator('input[name="rt.process.env.0.name"]').fill("COST_USD")
    await page.locator('input[name="rt.process.env.0.value"]').fill("2")
    await page.get_by_test_id("test-runtime").click()
    rows = page.get_by_test_id("check-rows")
    await expect(rows.locator('tr[data-check="config"]')).to_have_attribute("data-level", "pass")
    await expect(page.get_by_test_id("check-verdict")).to_contain_text("Ready")
    await live.shot("10-new-agent-tested")
    await page.get_by_test_id("skill-triage").check()
    await page.get_by_test_id("budget").fill("1")
    await page.get_by_test_id("create-agent").click()
    await expect(page.get_by_test_id("created")).to_be_visible()
    agent_id = page.url.split("/")[4]
    agent = (await live.api.get(f"/api/agents/{agent_id}")).json()
    assert agent["skills"] == ["triage"] and agent["budget_monthly_cents"] == 100
    assert agent["title"] == "Support lead"

    # A second agent whose runtime fails.
    broken = await live.api.post(
        f"/api/orgs/{org_id}/agents",
        json={"name": "Broken", "runtime_config": cost_runtime(FAIL="model offline")},
    )
    assert broken.status_code == 201, broken.text

    # Messenger is open; the failed run and the budget alert arrive while it is.
    await page.goto(live.url + "/messenger")
    await page.evaluate("window.attentionMarker = 'no reload'")
    for aid in (broken.json()["id"], agent_id):
        conv = (
            await live.api.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": aid})
        ).json()
        msg = (
            await live.api.post(f"/api/conversations/{conv['id']}/messages", json={"body": "go"})
        ).json()
        await wait_run(live.api, msg["run_id"])
    attention = page.get_by_test_id("attention")
    await expect(attention.locator('a[data-thread="failed-runs"]')).to_be_visible(timeout=10_000)
    await expect(attention.locator('a[data-thread="budget-alerts"]')).to_be_visible(timeout=10_000)
    assert await page.evaluate("window.attentionMarker") == "no reload"
    await live.shot("11-messenger-attention")
    await attention.locator('a[data-thread="budget-alerts"]').click()
    await expect(page.get_by_test_id("system-items")).to_contain_text("budget reached: paused")
    await page.get_by_role("link", name="Raise the budget").click()
    await expect(page.get_by_test_id("budget-paused")).to_be_visible()
    await page.get_by_test_id("budget").fill("50")
    await page.get_by_test_id("save-budget").click()
    await expect(page.get_by_test_id("budget-paused")).to_be_hidden()
    assert (await live.api.get(f"/api/agents/{agent_id}")).json()["status"] == "active"
