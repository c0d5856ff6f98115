"""Stored XSS, in a real Chromium: hostile names, titles, Feishu texts and run output on every page.

Rudder and the sandbox are filled by `tests/hostile/hostile_world.py` (an agent named
`Ex'+(document.title='PWNED')+'`, one named "Ada's bot", `"><img src=x onerror=alert(1)>`,
`</script><script>…`, `javascript:` URLs …). Every page of the web app, the bind page and the
sandbox's user and confirm pages are visited; no dialog may open, `document.title` must never
become PWNED, and the Content-Security-Policy must report no violation (our own pages need no
exception; a violation means injected code or a page broken under the CSP). Then the Disconnect
confirm: it asks with the agent's name as written, Cancel keeps the bot, OK disconnects it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from rudder import texts
from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from tests.helpers import wait_for
from tests.hostile.hostile_world import APOSTROPHE, JS_QUOTE, World, bind_and_resend, plant
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _require_chromium

pytestmark = pytest.mark.e2e

# Runs before any page script in every document: record what the CSP refused.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ""}`);
});
"""


@dataclass
class Watch:
    """Dialogs, CSP reports in the console and page errors, from every page of the context."""

    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answer: bool | None = None  # None: a dialog is unexpected (dismissed and recorded)

    def attach(self, context: BrowserContext) -> None:
        context.on("page", self._page)
        for page in context.pages:
            self._page(page)

    def _page(self, page: Page) -> None:
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if self.answer:
            await dialog.accept()
        else:
            await dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.console.append(text)


@dataclass
class Hostile:
    url: str
    sandbox_url: str
    api: httpx.AsyncClient
    world: World
    page: Page
    watch: Watch

    async def visit(self, url: str, settle_ms: int = 300) -> None:
        await self.page.goto(url)
        await self.page.wait_for_load_state("load")
        await self.page.wait_for_timeout(settle_ms)
        await self.assert_clean(url)

    async def assert_clean(self, where: str) -> None:
        title = await self.page.title()
        violations = await self.page.evaluate("window.__csp || []")
        # The payloads set the title to exactly PWNED (names with PWNED in them are fine).
        assert title != "PWNED", f"{where}: script ran (title {title!r})"
        assert not self.watch.dialogs, f"{where}: dialogs {self.watch.dialogs}"
        assert not violations, f"{where}: CSP violations {violations}"
        assert not self.watch.console, f"{where}: console {self.watch.console}"
        assert not self.watch.errors, f"{where}: page errors {self.watch.errors}"


@pytest.fixture
async def hostile(settings: Settings) -> AsyncIterator[Hostile]:
    _require_chromium()
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
        settings.feishu_base_url = sandbox.url
        app = create_app(settings)
        async with (
            RunningServer(app) as server,
            httpx.AsyncClient(base_url=server.url, timeout=20) as api,
            async_playwright() as pw,
        ):
            settings.public_url = server.url
            world = await plant(api, sb, app.state.services)
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            context = await browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(10_000)
            await context.add_init_script(RECORD_VIOLATIONS)
            watch = Watch()
            watch.attach(context)
            page = await context.new_page()
            try:
                h = Hostile(server.url, sandbox.url, api, world, page, watch)
                # The hostile Feishu user is bound in the browser, on the bind page itself.
                await h.visit(f"{server.url}/bind/feishu/{world.bind_code}")
                await page.get_by_label(
                    texts.FEISHU_BINDING_CODE_LABEL.format(product="Feishu")
                ).fill(world.confirmation)
                await page.get_by_role("button", name=texts.FEISHU_BINDING_CONFIRM).click()
                await expect(page.locator("#result")).to_contain_text("is now linked to")
                await h.assert_clean("bind page, after Confirm")
                await bind_and_resend(api, sb, world, confirm=False)
                yield h
            finally:
                await context.close()
                await browser.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_no_script_runs_on_any_page(hostile: Hostile) -> None:
    h, w = hostile, hostile.world
    for path in w.rudder_pages():
        await h.visit(h.url + path)

    # Live parts, where text arrives after the page: the conversation's event stream, the
    # pending setup's panel (htmx swaps it every second), the sandbox's chat log.
    await h.visit(f"{h.url}/messenger/{w.feishu_conversation}")
    await expect(h.page.locator("#thread .msg")).not_to_have_count(0)
    await h.visit(f"{h.url}/agents/{w.pending_agent}/integrations", settle_ms=2500)
    await expect(h.page.get_by_test_id("setup-status")).to_have_text("pending")
    await expect(h.page.locator(".qr svg")).to_be_visible()

    for path in w.sandbox_pages():
        await h.visit(h.sandbox_url + path)
    await h.visit(h.sandbox_url + "/_sandbox/")
    await h.page.locator("#user").select_option(w.app_ids["user"])
    await h.page.locator(f'[data-chat="{w.app_ids["chat"]}"]').click()
    await expect(h.page.locator("#log .msg")).not_to_have_count(0)
    await expect(h.page.locator("#log")).to_contain_text("<img src=x onerror=alert(1)>")
    await h.page.wait_for_timeout(1000)  # a few polls re-render the log
    await h.assert_clean("sandbox chat log")

    # The org switcher submits on change (app.js), and the other org's name stays text.
    await h.visit(h.url + "/agents")
    # htmx read its configuration: no eval, no script tags from swaps, no injected <style>.
    config = await h.page.evaluate(
        "[htmx.config.allowEval, htmx.config.allowScriptTags, htmx.config.includeIndicatorStyles]"
    )
    assert config == [False, False, False]
    await h.page.locator("#org-switch").select_option(w.other_org)
    await expect(h.page.locator("#org-switch")).to_have_value(w.other_org)
    await h.assert_clean("after switching organizations")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_bind_page_cannot_be_framed(hostile: Hostile) -> None:
    """Clickjacking: a page elsewhere frames the bind page under a decoy. The frame stays empty."""
    h = hostile
    bind_url = f"{h.url}/bind/feishu/{h.world.bind_code}"

    async def prize(request: Request) -> HTMLResponse:
        return HTMLResponse(f'<p>Win a prize!</p><iframe src="{bind_url}"></iframe>')

    # The attacker's page: another origin, with no policy of its own.
    async with RunningServer(Starlette(routes=[Route("/", prize)])) as attacker:
        await h.page.goto(attacker.url + "/")

        async def frame_settled() -> bool:
            urls = [f.url for f in h.page.frames][1:]
            return bool(urls) and urls[0] not in ("", "about:blank")

        await wait_for(frame_settled, timeout=10)
    # Chromium replaces a frame refused by frame-ancestors with its error page, and says why.
    assert [f.url for f in h.page.frames][1:] == ["chrome-error://chromewebdata/"]
    assert any("frame-ancestors" in m for m in h.watch.console), h.watch.console
    assert not h.watch.dialogs and not h.watch.errors


async def _count(items: list[str], n: int) -> bool:
    return len(items) >= n


async def _status(h: Hostile, agent_id: str) -> str:
    found = await h.api.get(f"/api/agents/{agent_id}/integrations/feishu")
    return str(found.json().get("status"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_disconnect_asks_with_the_name_as_written(hostile: Hostile) -> None:
    h, w = hostile, hostile.world
    for agent_id, name in ((w.apostrophe_agent, APOSTROPHE), (w.quote_agent, JS_QUOTE)):
        await h.visit(f"{h.url}/agents/{agent_id}/integrations")
        disconnect = h.page.get_by_role("button", name="Disconnect")

        # Cancel: the question names the agent exactly, and the bot stays connected.
        h.watch.answer = False
        await disconnect.click()
        await wait_for(lambda: _count(h.watch.dialogs, 1))
        assert h.watch.dialogs == [f"confirm: Disconnect this bot from {name}?"]
        await h.page.wait_for_timeout(300)
        await expect(h.page.get_by_test_id("integration-status")).to_have_text("connected")
        assert await _status(h, agent_id) == "connected"
        assert await h.page.title() != "PWNED"

        # OK: the form posts (same-origin Referrer-Policy keeps its Origin for the CSRF check).
        h.watch.answer = True
        await disconnect.click()
        await wait_for(lambda: _count(h.watch.dialogs, 2))
        await expect(h.page.get_by_role("button", name="Connect", exact=True)).to_be_visible()
        assert await _status(h, agent_id) == "disconnected"
        h.watch.dialogs.clear()
        h.watch.answer = None
        await h.assert_clean(f"after disconnecting {name}")
