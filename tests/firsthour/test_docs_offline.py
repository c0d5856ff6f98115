"""`/docs` renders in a real browser with every request outside this server refused."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest
from playwright.async_api import Route, async_playwright, expect

from rudder.config import Settings
from rudder.server import RunningServer, create_app
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.e2e


async def test_docs_page_names_no_other_origin(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert (await client.get("/favicon.ico")).status_code == 200


async def test_docs_render_with_no_network(settings: Settings) -> None:
    _require_chromium()
    app = create_app(settings)
    async with RunningServer(app) as server, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        refused: list[str] = []
        own = urlparse(server.url).netloc

        async def offline(route: Route) -> None:
            if urlparse(route.request.url).netloc == own or route.request.url.startswith("data:"):
                await route.continue_()
            else:
                refused.append(route.request.url)
                await route.abort()

        try:
            page = await browser.new_page()
            await page.route("**/*", offline)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(server.url + "/docs")
            await expect(page.locator(".opblock").first).to_be_visible(timeout=15000)
            assert await page.locator(".opblock").count() > 20
            await expect(page.locator(".info .title")).to_contain_text("Rudder")
            assert refused == [] and errors == []
        finally:
            await browser.close()
