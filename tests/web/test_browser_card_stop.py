"""A person presses Stop on the reply card in the sandbox's user page, in a real Chromium: the
run stops, the card ends with its footer and offers New conversation."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import select

from rudder import texts
from rudder.db.models import Run
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.buttons import card_with, team
from tests.routing.dialogue import dm, say
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.e2e


async def test_press_stop_on_the_user_page(served: FeishuRig) -> None:
    _require_chromium()
    rig = served
    t = await team(rig)
    chat = await dm(rig, t.ada, t.app)
    await say(rig, chat, t.ada, "count to 400")
    card = await card_with(rig, chat, texts.CARD_BUTTON_STOP)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        try:
            await page.goto(rig.sandbox.url + "/_sandbox/")
            await page.locator("#user").select_option(t.ada)
            await page.locator(f'[data-chat="{chat}"]').click()
            stop = page.locator("button.card-button", has_text=texts.CARD_BUTTON_STOP)
            await stop.click()
            await expect(page.locator("#sandbox-toast")).to_have_text(texts.CARD_TOAST_STOPPING)
            # The card ends "Stopped" and offers New conversation in place of Stop.
            await expect(page.locator("#log")).to_contain_text(texts.REPLY_STOPPED, timeout=15_000)
            await expect(
                page.locator("button.card-button", has_text=texts.CARD_BUTTON_NEW)
            ).to_be_visible(timeout=15_000)
            await expect(stop).to_have_count(0)
            assert errors == []
        finally:
            await browser.close()

    async def cancelled() -> bool:
        async with rig.services.sessions() as session:
            run = await session.scalar(select(Run).where(Run.source == "feishu"))
            return run is not None and run.status == "cancelled"

    await wait_for(cancelled)
    [press] = (await rig.control("GET", f"/callbacks?message_id={card['message_id']}"))["items"]
    assert press["status"] == "answered" and press["user_id"] == t.ada
