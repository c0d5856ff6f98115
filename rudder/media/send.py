"""A reply's attachments into Feishu: uploaded, then sent as image/file/audio messages.

One outbox row per attachment (kind `attachment`, key (run, "attachment", attachment id)),
sent after the reply's text. The row's steps, each resumable:
1. upload (`POST /open-apis/im/v1/images` or `/files`); the key Feishu returns is written to
   the row (checkpoint) before anything else happens;
2. the image/file message, as a reply to the trigger with the row's `uuid`, which Feishu runs
   at most once.
A crash (kill -9) during the upload leaves the row without a key: the next attempt uploads
again, so Feishu may hold an unused copy of the file, but the message that shows it is only
ever sent once (step 2's uuid). A crash after the checkpoint does not upload again.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Attachment
from rudder.domain import activity
from rudder.feishu import reply_calls as calls
from rudder.feishu.client import BotClient
from rudder.feishu.errors import FeishuError
from rudder.feishu.outbox import Checkpoint, Item, Sessions
from rudder.feishu.resources import content_for, upload_file, upload_image
from rudder.media.blobs import FileBlobStore, copy_out
from rudder.media.config import MediaConfig
from rudder.media.sniff import file_type_for

if TYPE_CHECKING:
    from rudder.feishu.reply_stream import ReplyTarget, RunReply

ATTACHMENT = "attachment"


async def send_all(reply: RunReply, target: ReplyTarget) -> None:
    """Send the run's stored attachments (after its text), each exactly once; say in the chat
    which ones the agent asked for but may not send."""
    async with reply.ob.services.sessions() as session:
        rows = list(
            await session.scalars(
                select(Attachment)
                .where(Attachment.run_id == reply.run_id, Attachment.direction == "out")
                .order_by(Attachment.created_at, Attachment.id)
            )
        )
    to = target.reply_to or target.chat_id
    for row in rows:
        if row.status == "refused":
            text = texts.MEDIA_OUT_REFUSED_NOTICE.format(name=row.name, reason=row.reason)
            note: dict[str, Any] = {"chat_id": target.chat_id, "reply_to": target.reply_to}
            note.update(msg_type="text", content={"text": text})
            await reply._send(target, calls.TEXT, to, note, "attachment_refused", row.id)
            continue
        if row.status != "stored":
            continue
        payload: dict[str, Any] = {
            "chat_id": target.chat_id,
            "reply_to": target.reply_to,
            "attachment_id": row.id,
            "name": row.name,
            "kind": row.kind,
            "mime_type": row.mime_type,
            "duration": row.duration_ms,
        }
        item = await reply._send(target, ATTACHMENT, to, payload, "attachment", row.id)
        if item.status != "sent":
            await _undelivered(reply, row.id, item.last_error or "unknown error")


async def _undelivered(reply: RunReply, attachment_id: str, error: str) -> None:
    """The text arrived; this file did not: said on the attachment, and in the activity."""
    async with reply.ob.services.sessions() as session, session.begin():
        row = await session.get(Attachment, attachment_id)
        if row is None:
            return
        row.reason = f"not delivered to Feishu: {error}"[:2000]
        activity.record(
            session,
            org_id=row.org_id,
            actor="system",
            action="media.send_failed",
            entity_type="attachment",
            entity_id=row.id,
            details={"run_id": reply.run_id, "name": row.name, "error": error[:500]},
        )


@contextlib.asynccontextmanager
async def _local_copy(media: MediaConfig, blob_key: str) -> AsyncIterator[Path]:
    """A path to the blob's bytes: the file itself, or a temporary copy of database chunks."""
    store = media.store
    if isinstance(store, FileBlobStore):
        yield store._path(blob_key)
        return
    store.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.spool_dir) as tmp:
        path = Path(tmp) / "upload"
        await copy_out(store, blob_key, path)
        yield path


async def perform(
    sessions: Sessions, media: MediaConfig, bot: BotClient, item: Item, checkpoint: Checkpoint
) -> None:
    p = item.payload
    kind = str(p.get("kind") or "file")
    msg_type = "image" if kind == "image" else ("audio" if kind == "audio" else "file")
    name = str(p.get("name") or "file")
    if not p.get("key"):
        async with sessions() as session:
            row = await session.get(Attachment, str(p.get("attachment_id")))
        if row is None or not row.blob_key:
            raise FeishuError(-2, "the attachment's bytes are gone (deleted or expired)")
        async with _local_copy(media, row.blob_key) as path:
            if msg_type == "image":
                p["key"] = await upload_image(bot, path, name)
            else:
                mime = str(p.get("mime_type") or "")
                file_type = "opus" if msg_type == "audio" else file_type_for(mime, name)
                duration = p.get("duration")
                p["key"] = await upload_file(
                    bot, path, name, file_type, duration if isinstance(duration, int) else None
                )
        await checkpoint()  # uploaded: a retry sends this key, it does not upload again
    await calls._post(bot, item, msg_type, content_for(msg_type, str(p["key"]), name))
