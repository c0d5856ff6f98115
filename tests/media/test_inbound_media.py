"""Inbound media through the sandbox: what a Feishu user sends reaches a process agent as files."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Attachment
from tests.conftest import FeishuRig
from tests.media.media_agent import PNG
from tests.media.support import media_chat
from tests.routing.dialogue import connected_bot
from tests.web.conftest import e


async def test_a_dm_with_an_image_reaches_the_agent_as_a_file_with_the_same_sha256(
    rig: FeishuRig,
) -> None:
    chat = await media_chat(rig)
    image = PNG + os.urandom(2000)  # a PNG header: sniffed as image/png
    await chat.send("image", image)
    row = await chat.routed_row()
    assert row["outcome"] == "processed", row
    assert "1 of 1 attachment(s) fetched" in row["reason"]
    digest = hashlib.sha256(image).hexdigest()
    text = await chat.wait_bot_text(digest)
    assert text.startswith("image.png image/png ")
    async with rig.services.sessions() as session:
        stored = list(await session.scalars(select(Attachment)))
        logged = list(
            await session.scalars(select(ActivityLog).where(ActivityLog.action == "media.fetched"))
        )
    assert [(a.status, a.sha256, a.size, a.mime_type) for a in stored] == [
        ("stored", digest, len(image), "image/png")
    ]
    assert len(logged) == 1 and logged[0].details["name"] == "image.png"


async def test_file_voice_video_and_post_pictures_all_arrive(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    pdf = b"%PDF-1.7\n" + os.urandom(5000)
    await chat.send("file", pdf, file_name="report.pdf")
    assert (await chat.routed_row())["outcome"] == "processed"
    await chat.wait_bot_text(f"report.pdf application/pdf {hashlib.sha256(pdf).hexdigest()}")

    voice = b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead" + os.urandom(300)
    await chat.send("audio", voice, duration=1500)
    await chat.routed_row()
    await chat.wait_bot_text(f"voice.opus audio/ogg {hashlib.sha256(voice).hexdigest()}")

    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000)
    await chat.send("media", video, file_name="clip.mp4")
    await chat.routed_row()
    await chat.wait_bot_text(f"clip.mp4 video/mp4 {hashlib.sha256(video).hexdigest()}")

    # A post with text and two pictures: the text is the message, the pictures its files.
    keys = []
    for extra in (b"a", b"b"):
        up = await rig.control(
            "POST",
            "/files",
            json={"kind": "image", "data_base64": base64.b64encode(PNG + extra).decode()},
        )
        keys.append(up["key"])
    await chat.send("post", text="look at these", image_keys=keys)
    assert (await chat.routed_row())["outcome"] == "processed"
    second = hashlib.sha256(PNG + b"b").hexdigest()
    text = await chat.wait_bot_text(second)
    assert hashlib.sha256(PNG + b"a").hexdigest() in text
    conv_messages = await _messages(rig, chat.agent["org_id"], chat.chat_id)
    post = next(m for m in conv_messages if str(m["body"]).startswith("look at these"))
    assert [a["mime_type"] for a in post["attachments"]] == ["image/png", "image/png"]


async def _messages(rig: FeishuRig, org_id: str, chat_id: str) -> list[dict[str, Any]]:
    convs = (await rig.client.get(f"/api/orgs/{org_id}/conversations")).json()
    conv = next(c for c in convs if c["external_chat_id"] == chat_id)
    rows: list[dict[str, Any]] = (
        await rig.client.get(f"/api/conversations/{conv['id']}/messages")
    ).json()
    return rows


async def test_the_integrations_tab_says_what_happens_to_media_and_voice(
    rig: FeishuRig,
) -> None:
    agent, _ = await connected_bot(rig)
    panel = (
        await rig.client.get(
            f"/agents/{agent['id']}/integrations/panel", headers={"HX-Request": "true"}
        )
    ).text
    assert e(texts.WEB_MEDIA_FACTS) in panel
