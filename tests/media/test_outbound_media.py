"""Outbound media: a process agent's attachment arrives in the chat as an image/file message,
exactly once, after the text."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from rudder.db.models import Attachment, OutboxItem
from rudder.feishu.outbound import outbound_of
from rudder.feishu.outbox import Item
from rudder.media.send import ATTACHMENT
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.media.media_agent import PNG
from tests.media.support import media_chat
from tests.routing.dialogue import say


async def test_the_agents_image_and_file_arrive_once_after_the_text(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    trigger = await say(rig, chat.chat_id, chat.user_id, "please send image and send file")
    await chat.routed_row()

    async def three() -> list[dict[str, object]] | None:
        items = [m for m in await chat.bot_items() if m.get("parent_id") == trigger]
        kinds = [m["msg_type"] for m in items]
        return items if "image" in kinds and "file" in kinds else None

    items = await wait_for(three, timeout=20)
    await outbound_of(rig.services).wait_idle()
    items = [m for m in await chat.bot_items() if m.get("parent_id") == trigger]
    kinds = [m["msg_type"] for m in items]
    assert kinds.count("image") == 1 and kinds.count("file") == 1, kinds
    assert kinds.index("image") > 0 and kinds.index("file") > 0  # the text comes first
    resources = (await rig.control("GET", f"/resources?app_id={chat.app['app_id']}"))["items"]
    assert sorted(r["sha256"] for r in resources) == sorted(
        [hashlib.sha256(PNG).hexdigest(), hashlib.sha256(b"%PDF-1.4\n% a tiny pdf\n").hexdigest()]
    )
    async with rig.services.sessions() as session:
        rows = list(await session.scalars(select(OutboxItem).where(OutboxItem.kind == ATTACHMENT)))
        out = list(await session.scalars(select(Attachment).where(Attachment.direction == "out")))
    assert sorted(r.status for r in rows) == ["sent", "sent"]
    assert sorted((a.kind, a.status) for a in out) == [("file", "stored"), ("image", "stored")]

    # A crash after the message went out but before "sent" was written: the row is delivered
    # again, once with its uploaded key kept and once as if the crash hit mid-upload (no key).
    # Feishu's uuid keeps the message single either way; only the upload may repeat.
    ob = outbound_of(rig.services)
    for row in rows:
        item = Item.of(row)
        item.status = "pending"
        if item.payload.get("kind") == "file":
            item.payload.pop("key")
        assert (await ob.deliver(item)).status == "sent"
    again = [m for m in await chat.bot_items() if m.get("parent_id") == trigger]
    assert len(again) == len(items)
    uploaded = (await rig.control("GET", f"/resources?app_id={chat.app['app_id']}"))["items"]
    assert len(uploaded) == 3  # the image was not uploaded again; the file was
