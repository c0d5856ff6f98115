"""Attachments in the web conversation, in a real Chromium: images inline, files as downloads,
and an agent's attachment appearing live on its reply."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from playwright.async_api import Locator, expect

from tests.helpers import wait_for
from tests.media.media_agent import PNG
from tests.media.support import AGENT, stored_attachment
from tests.web.conftest import first_agent
from tests.web.test_browser import Live, live  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


async def _loaded(image: Locator) -> None:
    async def width() -> bool:
        return bool(await image.evaluate("i => i.complete && i.naturalWidth === 1"))

    await wait_for(width, timeout=10)


async def test_attachments_show_inline_and_as_downloads(live: Live) -> None:  # noqa: F811
    org_id, _ = await first_agent(live.api)
    agent = (
        await live.api.post(
            f"/api/orgs/{org_id}/agents",
            json={
                "name": "Lens",
                "runtime_type": "process",
                "runtime_config": {"command": sys.executable, "args": [str(AGENT)]},
            },
        )
    ).json()
    conv = (
        await live.api.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": agent["id"]})
    ).json()
    msg = (
        await live.api.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hello"})
    ).json()
    await stored_attachment(live.services, conv["id"], msg["id"], PNG, name="photo.png")
    await stored_attachment(live.services, conv["id"], msg["id"], b"%PDF-1.4\n", name="spec.pdf")

    page = live.page
    await page.goto(f"{live.url}/messenger/{conv['id']}")
    first = page.locator(f'[data-message-id="{msg["id"]}"] [data-testid="attachments"]')
    image = first.locator("img")
    await expect(image).to_have_attribute("alt", "photo.png")
    await _loaded(image)
    link = first.locator("a.attachment.file")
    await expect(link).to_have_attribute("download", "spec.pdf")
    href = await link.get_attribute("href")
    assert href is not None
    got = await live.api.get(href)
    assert got.status_code == 200 and got.content == b"%PDF-1.4\n"

    # The agent attaches an image to its reply: it shows on the reply without a reload.
    await page.get_by_label("Message").fill("please send image")
    await page.get_by_label("Message").press("Enter")
    reply_image = page.locator(".msg.assistant [data-testid='attachments'] img").last
    await expect(reply_image).to_have_attribute("alt", "out.png", timeout=15000)
    await _loaded(reply_image)


async def test_a_local_chat_uploads_files_that_reach_the_agent(
    live: Live,  # noqa: F811
    tmp_path: Path,
) -> None:
    org_id, _ = await first_agent(live.api)
    agent = (
        await live.api.post(
            f"/api/orgs/{org_id}/agents",
            json={
                "name": "Lens",
                "runtime_type": "process",
                "runtime_config": {"command": sys.executable, "args": [str(AGENT)]},
            },
        )
    ).json()
    conv = (
        await live.api.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": agent["id"]})
    ).json()
    photo = tmp_path / "holiday.png"
    photo.write_bytes(PNG)
    page = live.page
    await page.goto(f"{live.url}/messenger/{conv['id']}")
    await page.set_input_files("#composer-files", str(photo))
    await page.get_by_label("Message").fill("what is in it?")
    await page.get_by_role("button", name="Send").click()
    mine = page.locator(".msg.user [data-testid='attachments'] img").last
    await expect(mine).to_have_attribute("alt", "holiday.png", timeout=15000)
    await _loaded(mine)
    # The agent read the file from its run directory: the same bytes.
    digest = hashlib.sha256(PNG).hexdigest()
    await expect(page.locator(".msg.assistant .body").last).to_contain_text(digest, timeout=15000)
    await expect(page.locator("#composer-files")).to_have_value("")
