"""`http` agents: files over the 8 MB inline budget come as signed, expiring download links to
Rudder, which serve the same bytes while the run runs and nothing after it ended."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from rudder.config import Settings
from rudder.db.models import Run
from rudder.media import links
from rudder.runtimes._attachments import HTTP_INLINE_MAX, INLINE_BY_URL
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.media.http_agent import http_agent
from tests.media.media_agent import PNG
from tests.media.support import media_chat


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_runtime_urls": True})


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_large_file_is_offered_as_a_link_that_serves_its_bytes(rig: FeishuRig) -> None:
    async with http_agent() as agent:
        chat = await media_chat(rig, agent.spec())
        big = b"%PDF-1.7\n" + os.urandom(HTTP_INLINE_MAX + 1024)
        await chat.send("file", big, file_name="scan.pdf")
        await wait_for(agent.linked.wait, timeout=30)
        (item,) = agent.linked_items()
        assert item["name"] == "scan.pdf" and "data_base64" not in item
        assert item["omitted"] == INLINE_BY_URL
        assert item["url"].startswith("http://rudder.test/api/runs/")
        expires = datetime.fromisoformat(item["url_expires_at"].replace("Z", "+00:00"))
        left = (expires - datetime.now(UTC)).total_seconds()
        assert 0 < left <= links.URL_TTL_S
        got = await rig.client.get(path_of(item["url"]))
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(big).hexdigest()
        assert got.headers["x-content-type-options"] == "nosniff"
        agent.release.set()
        await chat.wait_bot_text("scan.pdf " + INLINE_BY_URL)
        run_id = urlsplit(item["url"]).path.split("/")[3]

        async def ended() -> bool:
            async with rig.services.sessions() as session:
                run = await session.get(Run, run_id)
            return run is not None and run.finished_at is not None

        await wait_for(ended, timeout=20)
        # The run has ended: the same link is refused.
        after = await rig.client.get(path_of(item["url"]))
        assert after.status_code == 403


async def test_small_files_stay_inline_without_a_link(rig: FeishuRig) -> None:
    async with http_agent() as agent:
        chat = await media_chat(rig, agent.spec())
        await chat.send("image", PNG + b"x" * 100)
        await chat.wait_bot_text("image.png inline")
        (context,) = [c for c in agent.contexts if c.get("attachments")]
        (item,) = context["attachments"]
        assert "url" not in item and item["data_base64"]
