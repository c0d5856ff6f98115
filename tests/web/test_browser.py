"""The pages in a real Chromium against a real server on loopback and the offline sandbox."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from rudder import texts
from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from rudder.services import Services
from tests.web.conftest import first_agent, insert_bound_conversation

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("RUDDER_SCREENSHOT_DIR")  # set by hand to look at the pages


@dataclass
class Live:
    url: str
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    services: Services
    page: Page

    async def shot(self, name: str) -> None:
        if SCREENSHOTS:
            await self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing; `apt-get install chromium` to run browser tests")


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Live]:
    _require_chromium()
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        # Whole seconds: the registration client reads the poll interval as an integer.
        await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
        settings.feishu_base_url = sandbox.url
        app = create_app(settings)
        async with (
            RunningServer(app) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as api,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            context = await browser.new_context(viewport={"width": 1200, "height": 800})
            context.set_default_timeout(8000)
            page = await context.new_page()
            try:
                yield Live(server.url, api, sb, app.state.services, page)
            finally:
                await context.close()
                await browser.close()


async def test_connect_from_the_integrations_tab(live: Live) -> None:
    _, agent_id = await first_agent(live.api)
    page = live.page
    await page.goto(live.url + "/agents")
    await page.locator(f'tr[data-agent-id="{agent_id}"] a').click()
    await page.get_by_role("link", name="Integrations").click()
    await page.get_by_label("Feishu CN").first.check()
    async with page.context.expect_page() as opened:  # Connect opens the link in a new tab
        await page.get_by_role("button", name="Connect", exact=True).click()
    authorize = await opened.value
    link = page.locator("#authorize-link")
    await expect(link).to_be_visible()
    assert "user_code=" in (await link.get_attribute("href") or "")
    await authorize.wait_for_load_state()
    assert "user_code=" in authorize.url  # the confirm page of the chosen product
    await authorize.close()
    await expect(page.locator(".qr svg")).to_be_visible()
    await expect(page.get_by_test_id("setup-status")).to_have_text("pending")
    await live.shot("integrations-pending")

    regs = (await live.sandbox.get("/_sandbox/api/registrations?status=pending")).json()
    code = regs["items"][0]["user_code"]
    approved = await live.sandbox.post(f"/_sandbox/api/registrations/{code}/approve", json={})
    assert approved.status_code < 300
    # No reload: the panel polls itself and turns connected.
    await expect(page.get_by_test_id("integration-status")).to_have_text(
        "connected", timeout=10_000
    )
    await expect(page.locator("#feishu-panel")).to_contain_text("Feishu CN")
    await expect(page.get_by_role("button", name="Disconnect")).to_be_visible()
    await live.shot("integrations-connected")


async def test_messenger_streams_and_stops(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    page = live.page
    await page.goto(live.url + "/messenger")
    await page.get_by_role("button", name="New conversation").click()
    await expect(page.locator("#composer")).to_be_visible()

    await page.get_by_label("Message").fill("hello there")
    await page.get_by_label("Message").press("Enter")
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")
    await expect(page.locator(".msg.user").last).to_contain_text("hello there")
    assert (await reply.locator(".body").inner_text()).strip()

    # A slow reply: watch it grow, then stop it half-way.
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", "150")
    await page.get_by_label("Message").fill("please be slow")
    await page.get_by_role("button", name="Send").click()
    slow = page.locator('.msg.assistant[data-status="streaming"]')
    await expect(slow).to_have_count(1)
    await expect(slow.locator(".body")).not_to_have_text("")
    first = await slow.locator(".body").inner_text()
    await expect(slow.locator(".body")).not_to_have_text(first)  # it keeps streaming
    await live.shot("messenger-streaming")
    await page.get_by_role("button", name="Stop").click()
    stopped = page.locator(".msg.assistant").last
    await expect(stopped).to_have_attribute("data-status", "stopped")
    await expect(stopped).to_contain_text(texts.RUN_CANCELLED)
    await expect(page.locator("#stop-form")).to_be_hidden()


async def test_bound_conversation_forks_to_a_local_copy(live: Live) -> None:
    org_id, agent_id = await first_agent(live.api)
    conv_id = await insert_bound_conversation(live.services, org_id, agent_id)
    page = live.page
    await page.goto(live.url + "/messenger")
    entry = page.locator(f'a[data-conversation-id="{conv_id}"]')
    await expect(entry.get_by_test_id("source-badge")).to_have_text("Feishu · p2p")
    await entry.click()
    await expect(page.get_by_test_id("read-only")).to_have_text(texts.BOUND_CONVERSATION_READ_ONLY)
    await expect(page.locator("#composer")).to_have_count(0)
    await live.shot("messenger-bound")

    await page.get_by_test_id("fork").click()
    await expect(page.locator("#composer")).to_be_visible()
    await expect(page.locator(".thread")).to_contain_text("Hi Ada!")
    origin = page.get_by_test_id("fork-origin").get_by_role("link")
    assert await origin.get_attribute("href") == f"/messenger/{conv_id}"
    await page.get_by_label("Message").fill("continue here")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "completed")
