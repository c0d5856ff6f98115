"""A person chats with a Rudder agent's bot from the sandbox's user page, in a real browser."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from tests.helpers import default_org_and_agent, wait_for
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.e2e


async def test_dm_a_bot_from_the_user_page(settings: Settings) -> None:
    _require_chromium()
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        settings.feishu_base_url = sandbox.url
        async with (
            RunningServer(create_app(settings)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as api,
            async_playwright() as pw,
        ):
            _, agent = await default_org_and_agent(api)
            app = (
                await sb.post("/_sandbox/api/apps", json={"name": "Helper Bot", "brand": "feishu"})
            ).json()
            connected = await api.post(
                f"/api/agents/{agent['id']}/integrations/feishu/manual",
                json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
            )
            assert connected.status_code == 200, connected.text
            # Someone else first: the page must not fall back to the first user after a reload.
            await sb.post("/_sandbox/api/users", json={"name": "Bob"})
            ada = (await sb.post("/_sandbox/api/users", json={"name": "Ada"})).json()

            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            try:
                await page.goto(sandbox.url + "/_sandbox/")
                await page.locator("#user").select_option(ada["user_id"])
                await page.locator(f'button[data-dm="{app["app_id"]}"]').click()
                await page.locator("#text").fill("hello from the page")
                await page.locator("#send button").click()
                # The bot answers with a binding prompt; link Ada to the local owner.
                await expect(page.locator("#log")).to_contain_text("/bind/feishu/", timeout=15_000)
                # The binding link in the bot's message is a link, as in Feishu.
                link = page.locator('#log a[href*="/bind/feishu/"]')
                await expect(link).to_have_count(1)
                assert (await link.get_attribute("target")) == "_blank"
                said = await page.locator("#log").inner_text()
                code = re.search(r"/bind/feishu/([\w-]+)", said)
                confirmation = re.search(r"enter this code: (\S+)", said)
                assert code and confirmation
                confirmed = await api.post(
                    f"/api/feishu-bindings/{code.group(1)}/confirm",
                    json={"confirmation_code": confirmation.group(1)},
                )
                assert confirmed.status_code == 200

                await page.locator("#text").fill("hello again")
                await page.locator("#send button").click()

                async def replied() -> bool:
                    text = await page.locator("#log").inner_text()
                    return "example agent" in text.lower()

                await wait_for(replied, timeout=20)

                # A reload keeps the user and the open chat.
                await page.reload()
                await expect(page.locator("#log")).to_contain_text("hello again")
                assert await page.locator("#user").input_value() == ada["user_id"]
            finally:
                await browser.close()
