"""Inbound media that does not make it: too large, cut off, too slow, refused by Feishu, a
sticker. The message still reaches the agent with the reason; the chat is told once."""

from __future__ import annotations

import base64
import os

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Attachment
from rudder.media.config import MediaConfig
from tests.conftest import FeishuRig
from tests.media.media_agent import PNG
from tests.media.support import Chat, media_chat


def _media(rig: FeishuRig) -> MediaConfig:
    media = rig.services.runs.media
    assert media is not None
    return media


async def _rows(rig: FeishuRig) -> list[Attachment]:
    async with rig.services.sessions() as session:
        return list(await session.scalars(select(Attachment).order_by(Attachment.created_at)))


async def _notice(chat: Chat, name: str) -> str:
    return await chat.wait_bot_text(f"• {name}:")


async def test_an_oversized_file_is_refused_and_the_message_still_arrives(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    _media(rig).max_file = 4000
    await chat.send("file", os.urandom(5000), file_name="big.bin")
    row = await chat.routed_row()
    assert row["outcome"] == "processed" and "0 of 1" in row["reason"], row
    [stored] = await _rows(rig)
    assert stored.status == "refused" and stored.blob_key is None
    assert stored.reason is not None and stored.reason.startswith("it is larger than")
    notice = await _notice(chat, "big.bin")
    assert "reached the agent without" in notice
    # The agent got the message, told what is missing.
    said = await chat.wait_bot_text("big.bin missing")
    assert "larger than" in said
    # Nothing half-written is left in the spool.
    assert not any(_media(rig).store.spool_dir.glob("spool-*"))
    async with rig.services.sessions() as session:
        refused = list(
            await session.scalars(select(ActivityLog).where(ActivityLog.action == "media.refused"))
        )
    assert len(refused) == 1 and refused[0].details["name"] == "big.bin"


async def test_the_per_message_total_is_enforced(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    _media(rig).max_message = len(PNG) * 2 + 10
    keys = []
    for n in range(3):
        up = await rig.control(
            "POST", "/files", json={"kind": "image", "data_base64": _b64(PNG + bytes([n]) * 5)}
        )
        keys.append(up["key"])
    await chat.send("post", text="three", image_keys=keys)
    await chat.routed_row()
    await _notice(chat, "image")
    rows = await _rows(rig)
    assert [r.status for r in rows] == ["stored", "stored", "refused"]
    assert rows[2].reason is not None and "together" in rows[2].reason


async def test_a_cut_download_is_not_kept_and_is_reported(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await rig.control(
        "POST", "/faults", json={"kind": "cut_download", "after_bytes": 1000, "count": 1}
    )
    await chat.send("file", os.urandom(50_000), file_name="cut.zip")
    row = await chat.routed_row()
    assert row["outcome"] == "processed"
    [stored] = await _rows(rig)
    assert stored.status == "failed" and stored.blob_key is None, stored.reason
    await _notice(chat, "cut.zip")


async def test_a_slow_download_times_out(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    _media(rig).fetch_timeout_s = 0.3
    await rig.control("POST", "/faults", json={"kind": "slow_download", "delay_s": 3, "count": 1})
    await chat.send("image", PNG)
    await chat.routed_row()
    [stored] = await _rows(rig)
    assert stored.status == "failed"
    assert stored.reason == texts.MEDIA_FETCH_TIMEOUT.format(seconds="0.3")
    await _notice(chat, "image")


async def test_feishus_download_limit_and_refusals_are_reasons(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await rig.control("PATCH", "/settings", json={"resource_download_limit": 100})
    await chat.send("file", os.urandom(500), file_name="huge.iso")
    await chat.routed_row()
    # A key the message does not carry (Feishu: 234003 "File not in msg").
    await chat.send("image", content={"image_key": "img_v3_not_there"})
    await chat.routed_row()
    rows = await _rows(rig)
    assert [(r.status, r.reason) for r in rows] == [
        ("refused", texts.MEDIA_FEISHU_TOO_LARGE),
        ("failed", texts.MEDIA_FETCH_FAILED.format(detail="Feishu answered code 234003")),
    ]


async def test_a_sticker_reaches_the_agent_without_a_notice(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await chat.send("sticker")
    row = await chat.routed_row()
    assert row["outcome"] == "processed"
    await chat.wait_bot_text("sticker missing: " + texts.MEDIA_STICKER)
    assert not [m for m in await chat.bot_items() if "could not fetch" in str(m.get("text"))]


async def test_a_corrupt_image_is_kept_with_the_type_its_bytes_have(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await chat.send("image", b"\x00\x01 not really an image")
    await chat.routed_row()
    await chat.wait_bot_text("application/octet-stream")
    [stored] = await _rows(rig)
    assert stored.status == "stored" and stored.mime_type == "application/octet-stream"
    assert stored.name == "image.bin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
