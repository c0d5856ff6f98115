"""Signing in and out in a real Chromium against a real server (authenticated mode)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from rudder import texts
from rudder.config import Settings
from rudder.server import RunningServer
from tests.auth.conftest import PASSWORD, build_app, seed_people

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


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") or os.environ.get("RUDDER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing; `apt-get install chromium` to run browser tests")


async def test_sign_in_and_out_in_a_browser(settings: Settings) -> None:
    _require_chromium()
    app = build_app(settings)
    async with RunningServer(app) as server, async_playwright() as pw:
        crew = await seed_people(app)
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(8000)
            await page.goto(f"{server.url}/agents")
            await expect(page).to_have_url(f"{server.url}/login?next=/agents")

            await page.get_by_label("Email").fill(crew.ada)
            await page.get_by_label("Password").fill("wrong password")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text(texts.AUTH_LOGIN_FAILED)

            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{server.url}/agents")
            await expect(page.get_by_text("Example Agent").first).to_be_visible()
            await expect(page.locator("header")).to_contain_text("Ada")

            # A form post from our own page passes the CSRF check (the browser sends Origin).
            await page.goto(f"{server.url}/members")
            await page.get_by_label("Name").fill("Grace")
            await page.get_by_label("Email").fill("grace@example.com")
            await page.get_by_role("button", name="Add member").click()
            await expect(page.get_by_role("cell", name="grace@example.com")).to_be_visible()

            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_role("status")).to_contain_text(texts.AUTH_SIGNED_OUT)
            await page.goto(f"{server.url}/members")
            await expect(page).to_have_url(f"{server.url}/login?next=/members")
        finally:
            await browser.close()
