"""The user page in a real browser: press a card's button, send an image."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from rudder.sandbox.resource_store import PLACEHOLDER_PNG
from tests.sandbox.conftest import SandboxHarness, SdkWebhook, eventually
from tests.sandbox.test_card_callbacks import CARD
from tests.sandbox.test_media import lark_client, sdk_send
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.e2e


async def test_press_a_card_button_and_send_an_image_from_the_page(
    sandbox: SandboxHarness,
    webhook_app: tuple[dict[str, Any], SdkWebhook],
    tmp_path: Path,
) -> None:
    _require_chromium()
    app, hook = webhook_app
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    sent = await asyncio.to_thread(sdk_send, lark_client(sandbox, app), chat, "interactive", CARD)
    assert sent.code == 0
    picture = tmp_path / "photo.png"
    picture.write_bytes(PLACEHOLDER_PNG)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # The page's CSP allows no inline script or style: a violation shows in the console.
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        try:
            await page.goto(sandbox.url + "/_sandbox/")
            await page.locator(f'[data-chat="{chat}"]').click()
            button = page.locator("button.card-button", has_text="Stop")
            await button.click()
            await expect(page.locator("#sandbox-toast")).to_have_text("stopping run 7")
            await expect(page.locator("#log")).to_contain_text("stopped")
            assert hook.seen[0].event.action.value == {"op": "stop", "run": 7}
            assert hook.seen[0].event.action.name == "stop"

            await page.locator("#attach").set_input_files(str(picture))

            async def image_shown() -> list[dict[str, Any]]:
                items = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
                return [m for m in items if m["msg_type"] == "image"]

            [image] = await eventually(image_shown)
            [resource] = image["resources"]
            assert resource["sha256"] == hashlib.sha256(PLACEHOLDER_PNG).hexdigest()
            assert resource["file_name"] == "photo.png"
            await expect(page.locator('#log img[alt="photo.png"]')).to_be_visible()
            assert errors == []
        finally:
            await browser.close()
