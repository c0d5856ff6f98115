"""Attacks on the download links `http` agents get for large attachments: a forged or expired
token, a token moved to another run or another attachment, a key that is not Rudder's, a link
of a finished run. Each is refused; only the exact link of a running run serves bytes."""

from __future__ import annotations

import hashlib
import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from rudder.config import Settings
from rudder.db.models import Attachment, Run
from rudder.domain.secrets import SecretBox
from rudder.media import links
from rudder.runtimes._attachments import HTTP_INLINE_MAX
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.hostile.conftest import count
from tests.media.http_agent import http_agent
from tests.media.media_agent import PNG
from tests.media.support import media_chat


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_runtime_urls": True})


async def test_download_links_refuse_forged_expired_and_moved_tokens(rig: FeishuRig) -> None:
    async with http_agent() as agent:
        chat = await media_chat(rig, agent.spec())
        # An earlier message's image (its run is over) and the large file of the running run.
        await chat.send("image", PNG + b"earlier")
        await chat.wait_bot_text("image.png inline")
        big = b"%PDF-1.7\n" + os.urandom(HTTP_INLINE_MAX + 1)
        await chat.send("file", big, file_name="secret.pdf")
        await wait_for(agent.linked.wait, timeout=30)
        (item,) = agent.linked_items()
        parts = urlsplit(item["url"])
        _, _, run_id, _, attachment_id = parts.path.strip("/").split("/")
        token = parse_qs(parts.query)["token"][0]
        async with rig.services.sessions() as session:
            image = await session.scalar(select(Attachment).where(Attachment.kind == "image"))
            runs = list(await session.scalars(select(Run).where(Run.id != run_id)))
        assert image is not None and runs
        other_run = runs[0].id
        box = rig.services.box
        expires = int(token.split(".")[0])
        sig = token.split(".")[1]
        forged = sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")

        def at(run: str, attachment: str, tok: str | None) -> str:
            query = f"?token={tok}" if tok is not None else ""
            return f"/api/runs/{run}/attachments/{attachment}{query}"

        refused = {
            "no token": at(run_id, attachment_id, None),
            "empty token": at(run_id, attachment_id, ""),
            "forged signature": at(run_id, attachment_id, f"{expires}.{forged}"),
            "expiry pushed later": at(run_id, attachment_id, f"{expires + 3600}.{sig}"),
            "expired (signed by Rudder)": at(
                run_id, attachment_id, links.token(box, run_id, attachment_id, int(time.time()) - 1)
            ),
            "another run's path": at(other_run, attachment_id, token),
            "another attachment's path": at(run_id, image.id, token),
            "another key": at(
                run_id,
                attachment_id,
                links.token(SecretBox(os.urandom(32)), run_id, attachment_id, expires),
            ),
            "garbage": at(run_id, attachment_id, "9" * 40 + "." + "x" * 500),
        }
        for what, path in refused.items():
            answer = await rig.client.get(path)
            assert answer.status_code == 403, (what, answer.status_code, answer.text)
            assert b"%PDF" not in answer.content
            count("media: forged, expired or moved download links refused")
        # Even a token Rudder signed for this run cannot reach a file of another message.
        foreign = await rig.client.get(
            at(run_id, image.id, links.token(box, run_id, image.id, expires))
        )
        assert foreign.status_code == 404
        count("media: download links to another message's file refused")

        good = await rig.client.get(at(run_id, attachment_id, token))
        assert hashlib.sha256(good.content).digest() == hashlib.sha256(big).digest()
        agent.release.set()
        await chat.wait_bot_text("secret.pdf")

        async def ended() -> bool:
            async with rig.services.sessions() as session:
                run = await session.get(Run, run_id)
            return run is not None and run.finished_at is not None

        await wait_for(ended, timeout=20)
        assert (await rig.client.get(at(run_id, attachment_id, token))).status_code == 403
        count("media: download links of a finished run refused")
