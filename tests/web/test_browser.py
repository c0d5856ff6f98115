"""The pages in a real Chromium against a real server on loopback and the offline sandbox.

`test_walk_the_product_document` follows the Feishu guide from start to end; with
RUDDER_SCREENSHOT_DIR set it saves a screenshot of each page it passes (docs/screenshots/).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from rudder import texts
from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from rudder.services import Services
from tests.helpers import wait_for
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
VIEWPORT: ViewportSize = {"width": 1200, "height": 800}
SCREENSHOTS = os.environ.get("RUDDER_SCREENSHOT_DIR")  # set by hand to refresh docs/screenshots


@dataclass
class Live:
    url: str
    sandbox_url: str
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    services: Services
    page: Page

    async def shot(self, name: str, page: Page | None = None) -> None:
        """A viewport-sized PNG of the page (only when RUDDER_SCREENSHOT_DIR is set)."""
        if SCREENSHOTS:
            await (page or self.page).screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def _browser_required() -> bool:
    if os.environ.get("RUDDER_REQUIRE_BROWSER") == "1":
        return True
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_chromium() -> None:
    """Skip without Chromium, unless RUDDER_REQUIRE_BROWSER=1 (.ci/run) or CI is set: then fail."""
    if CHROMIUM.exists():
        return
    if _browser_required():
        pytest.fail(
            f"{CHROMIUM} is missing but the browser tests are required here "
            "(RUDDER_REQUIRE_BROWSER=1 or CI); install Debian's package: apt-get install chromium"
        )
    pytest.skip(
        f"{CHROMIUM} is missing; `apt-get install chromium` to run the browser tests "
        "(RUDDER_REQUIRE_BROWSER=1 makes them fail instead of skipping)"
    )


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
            # Links Rudder sends out (the binding prompt) must point at this server.
            settings.public_url = server.url
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            context = await browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(8000)
            # Every page of every test runs under the Content-Security-Policy: it must refuse
            # nothing of ours (an inline script or style, an eval in htmx) on any page.
            refused: list[str] = []
            context.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page = await context.new_page()
            try:
                yield Live(server.url, sandbox.url, api, sb, app.state.services, page)
                assert not refused, refused
            finally:
                await context.close()
                await browser.close()


async def test_walk_the_product_document(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Feishu guide, clicked through: connect, verify, bind, read-only, fork."""
    org_id, agent_id = await first_agent(live.api)
    page = live.page

    # "Open the agent in Rudder." The shell links the sandbox, since Rudder talks to it.
    await page.goto(live.url + "/agents")
    await expect(page.get_by_test_id("sandbox-link")).to_have_attribute(
        "href", live.sandbox_url + "/_sandbox/"
    )
    await page.locator(f'tr[data-agent-id="{agent_id}"] a').click()

    # "Go to Integrations. Choose Feishu CN. Click Connect."
    await page.get_by_role("link", name="Integrations").click()
    await page.get_by_label("Feishu CN").first.check()
    async with page.context.expect_page() as opened:  # the authorization link, in a new tab
        await page.get_by_role("button", name="Connect", exact=True).click()
    confirm = await opened.value
    await expect(page.get_by_test_id("setup-status")).to_have_text("pending")
    await expect(page.locator(".qr svg")).to_be_visible()
    await page.evaluate("window.walkMarker = 'no reload'")
    await live.shot("01-connect-pending")

    # "Feishu or Lark opens with the bot name prefilled. Confirm the app authorization."
    await confirm.wait_for_load_state()
    assert "/page/cli?user_code=" in confirm.url
    assert (await confirm.locator("#app-name").input_value()).strip()
    await live.shot("02-sandbox-approve", confirm)
    await confirm.locator("#approve").click()
    await expect(confirm.locator("h1")).to_have_text("Approved")
    await confirm.close()

    # "Return to Rudder and wait for the setup status to become connected." (no reload)
    await expect(page.get_by_test_id("integration-status")).to_have_text(
        "connected", timeout=15_000
    )
    assert await page.evaluate("window.walkMarker") == "no reload"
    panel = page.locator("#feishu-panel")
    await expect(panel).to_contain_text("Feishu CN")
    app_id = (await panel.locator("dl.facts code").first.inner_text()).strip()
    assert app_id.startswith("cli_")
    await live.shot("03-connected")

    async def listening() -> bool:
        app = (await live.sandbox.get(f"/_sandbox/api/apps/{app_id}")).json()
        return bool(app.get("connections"))

    await wait_for(listening, timeout=15)

    # "Send a plain text message to the bot from Feishu" — as a new Feishu user, from the
    # sandbox's user page. Ada is not linked to a member yet: the bot answers with a link.
    feishu = await page.context.new_page()
    await feishu.goto(live.sandbox_url + "/_sandbox/")
    await feishu.locator("#user-name").fill("Ada Feishu")
    await feishu.locator("#new-user button").click()
    await expect(feishu.locator("#user")).to_contain_text("Ada Feishu")
    await feishu.locator(f'button[data-dm="{app_id}"]').click()
    await expect(feishu.locator(".chat.sel")).to_be_visible()
    await feishu.locator("#text").fill("Hello from Feishu")
    await feishu.locator("#send button").click()
    log = feishu.locator("#log")
    await expect(log).to_contain_text("/bind/feishu/", timeout=15_000)
    found = re.search(r"(https?://\S+?/bind/feishu/[\w-]+)", await log.inner_text())
    assert found and found.group(1).startswith(live.url)

    # "Bind the Feishu user to a Rudder organization member" — the link, in Rudder.
    await page.bring_to_front()
    await page.goto(found.group(1))
    await expect(page.locator("#intro")).to_contain_text("Example Agent")  # whose bot
    # The page asks for the code that only the bot's private message carries.
    code = re.search(r"enter this code: ([A-Z0-9]{4}-[A-Z0-9]{4})", await log.inner_text())
    assert code
    await page.get_by_label(texts.FEISHU_BINDING_CODE_LABEL.format(product="Feishu")).fill(
        code.group(1)
    )
    await live.shot("04-bind")
    await page.get_by_role("button", name=texts.FEISHU_BINDING_CONFIRM).click()
    await expect(page.locator("#result")).to_contain_text("is now linked to")

    # "... then resend the message." The agent answers in Feishu.
    await feishu.bring_to_front()
    await feishu.locator("#text").fill("Hello again")
    await feishu.locator("#send button").click()

    await expect(log).to_contain_text("I'm Rudder's example agent", timeout=20_000)
    chats = (await live.sandbox.get("/_sandbox/api/chats")).json()["items"]
    chat_id = next(c["chat_id"] for c in chats if app_id in c["app_ids"])

    async def reply_finished() -> list[dict[str, object]] | None:
        url = f"/_sandbox/api/chats/{chat_id}/messages"
        items: list[dict[str, object]] = (await live.sandbox.get(url)).json()["items"]
        return None if items[-1].get("streaming") else items

    feishu_messages = len(await wait_for(reply_finished, timeout=20))
    await live.shot("05-feishu-chat", feishu)

    # "In Rudder, you should see a Messenger conversation with a Feishu source badge" — unread.
    await page.bring_to_front()
    await page.goto(live.url + "/agents")
    await page.get_by_role("link", name="Messenger").click()
    entry = page.locator(".conv-list a", has=page.get_by_test_id("source-badge"))
    await expect(entry).to_have_count(1)
    await expect(entry.get_by_test_id("source-badge")).to_have_text("Feishu · p2p")
    await expect(entry.get_by_test_id("unread")).to_have_count(1)
    await live.shot("06-messenger-unread")
    await entry.click()
    thread = page.locator("#thread")
    await expect(thread).to_contain_text("Hello again")
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "completed", timeout=15_000)
    await expect(reply.locator(".body")).not_to_be_empty()

    # "Feishu-bound conversations are read-only from the local Rudder chat surface."
    await expect(page.get_by_test_id("read-only")).to_have_text(texts.BOUND_CONVERSATION_READ_ONLY)
    await expect(page.locator("#composer")).to_have_count(0)
    await live.shot("07-messenger-read-only")
    await page.get_by_role("link", name="Messenger").click()
    await expect(entry.get_by_test_id("unread")).to_have_count(0)  # opening it cleared the mark
    await entry.click()

    # "... fork the Feishu conversation." A local message in the fork gets a streamed reply.
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", "80")
    await page.get_by_test_id("fork").click()
    await expect(page.locator("#composer")).to_be_visible()
    await expect(page.get_by_test_id("fork-origin")).to_be_visible()
    await expect(thread).to_contain_text("Hello again")  # the history came along
    await page.get_by_label("Message").fill("Let's continue here in Rudder.")
    await page.get_by_label("Message").press("Enter")
    streaming = page.locator('.msg.assistant[data-status="streaming"]')
    await expect(streaming).to_have_count(1)
    await expect(streaming.locator(".body")).not_to_be_empty()
    first = await streaming.locator(".body").inner_text()
    await expect(streaming.locator(".body")).not_to_have_text(first)  # it grows live
    await live.shot("08-fork-streaming")
    done = page.locator(".msg.assistant").last
    await expect(done).to_have_attribute("data-status", "completed", timeout=20_000)
    await expect(page.locator(".msg.user").last).to_contain_text("continue here")

    # The fork is no longer bound to the Feishu chat: nothing more was posted there.
    after = (await live.sandbox.get(f"/_sandbox/api/chats/{chat_id}/messages")).json()["items"]
    assert len(after) == feishu_messages
    assert org_id


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
    # Through Rudder's short link, which says so once the setup is cancelled or replaced.
    assert re.search(r"/connect/\w+$", await link.get_attribute("href") or "")
    await authorize.wait_for_load_state()
    assert "user_code=" in authorize.url  # the confirm page of the chosen product
    await authorize.close()
    await expect(page.locator(".qr svg")).to_be_visible()
    await expect(page.get_by_test_id("setup-status")).to_have_text("pending")

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


async def test_connect_errors_show_and_a_setup_can_be_cancelled(live: Live) -> None:
    _, agent_id = await first_agent(live.api)
    page = live.page
    await page.goto(f"{live.url}/agents/{agent_id}/integrations")
    # Feishu can't be reached: the reason is on the page, in words, with the offline way out.
    live.services.settings.feishu_base_url = "http://127.0.0.1:9"
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.get_by_test_id("panel-error")).to_contain_text("can't reach Feishu CN")
    await expect(page.get_by_test_id("panel-error")).to_contain_text("rudder start --sandbox")
    # Any other failure (here a 503 with a JSON reason) is shown next to the button too.
    live.services.settings.feishu_base_url = live.sandbox_url

    async def unavailable(route: Any) -> None:
        await route.fulfill(
            status=503, content_type="application/json", body='{"detail": "Down for upgrade."}'
        )

    await page.route("**/integrations/connect", unavailable)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.get_by_test_id("request-error")).to_have_text("Down for upgrade.")
    await page.unroute("**/integrations/connect")

    async with page.context.expect_page() as opened:
        await page.get_by_role("button", name="Connect", exact=True).click()
    await (await opened.value).close()
    await expect(page.get_by_test_id("setup-status")).to_have_text("pending")
    # The earlier reason is gone once an action works.
    await expect(page.get_by_test_id("request-error")).to_have_count(0)
    await page.get_by_test_id("setup-cancel").click()
    await expect(page.get_by_test_id("setup-ended")).to_contain_text("Cancelled by")
    await expect(page.get_by_role("button", name="Start again")).to_be_visible()

    # The cancelled code is approved anyway (an old tab): the agent gets that bot, and no
    # second app is left that nobody answers.
    regs = (await live.sandbox.get("/_sandbox/api/registrations?status=pending")).json()
    code = regs["items"][0]["user_code"]
    await live.sandbox.post(f"/_sandbox/api/registrations/{code}/approve", json={})

    async def connected() -> bool:
        r = await live.api.get(f"/api/agents/{agent_id}/integrations/feishu")
        return bool(r.json()["status"] == "connected")

    await wait_for(connected, timeout=15)
    await page.reload()
    await expect(page.get_by_test_id("integration-status")).to_have_text("connected")
    apps = (await live.sandbox.get("/_sandbox/api/apps")).json()
    items = apps.get("items", apps) if isinstance(apps, dict) else apps
    integration = (await live.api.get(f"/api/agents/{agent_id}/integrations/feishu")).json()
    assert [a["app_id"] for a in items] == [integration["app_id"]]


async def test_messenger_streams_and_stops(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    page = live.page
    await page.goto(live.url + "/messenger")
    await page.get_by_role("button", name="New conversation").click()
    await expect(page.locator("#composer")).to_be_visible()
    # The new page's deferred scripts (Enter sends) have run by "load", not by "visible".
    await page.wait_for_load_state("load")

    await page.get_by_label("Message").fill("hello there")
    await page.get_by_label("Message").press("Enter")
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")
    await expect(page.locator(".msg.user").last).to_contain_text("hello there")
    assert (await reply.locator(".body").inner_text()).strip()

    # A finished reply's Markdown is rendered live (the example agent echoes what it was sent),
    # and HTML in it stays text.
    await page.get_by_label("Message").fill("**loud** <i>quiet</i>")
    await page.get_by_label("Message").press("Enter")
    echoed = page.locator(".msg.assistant").nth(1)
    await expect(echoed).to_have_attribute("data-status", "completed")
    await expect(echoed.locator(".body.md strong")).to_have_text("loud")
    await expect(echoed.locator(".body i")).to_have_count(0)
    await expect(echoed.locator(".body")).to_contain_text("<i>quiet</i>")

    # A slow reply: watch it grow, then stop it half-way.
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", "150")
    await page.get_by_label("Message").fill("please be slow")
    await page.get_by_role("button", name="Send").click()
    slow = page.locator('.msg.assistant[data-status="streaming"]')
    await expect(slow).to_have_count(1)
    await expect(slow.locator(".body")).not_to_have_text("")
    first = await slow.locator(".body").inner_text()
    await expect(slow.locator(".body")).not_to_have_text(first)  # it keeps streaming
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

    await page.get_by_test_id("fork").click()
    await expect(page.locator("#composer")).to_be_visible()
    await expect(page.locator(".thread")).to_contain_text("Hi Ada!")
    origin = page.get_by_test_id("fork-origin").get_by_role("link")
    assert await origin.get_attribute("href") == f"/messenger/{conv_id}"
    await page.get_by_label("Message").fill("continue here")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "completed")


async def test_a_phone_wide_page_does_not_overflow(live: Live) -> None:
    """At 390 px the top bar and the agent tabs scroll inside the page, never widen it."""
    _, agent_id = await first_agent(live.api)
    page = await live.page.context.new_page()
    await page.set_viewport_size({"width": 390, "height": 800})
    for path in (f"/agents/{agent_id}/integrations", f"/agents/{agent_id}/runs", "/messenger"):
        await page.goto(live.url + path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    await page.close()
