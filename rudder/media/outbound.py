"""An agent's attachment event, checked and stored (the executor calls `take` for each one).

`{"type":"attachment","path":"report.pdf"}` names a file in the run's directory (process, the
CLIs); `{"type":"attachment","name":"chart.png","data_base64":"…"}` carries the bytes (http).
Only regular files inside the run's own directory are taken (rundir.resolve_outbound), up to
Feishu's upload limits; each becomes an `out` attachment of the reply message, and the Feishu
reply sends it after the text (media/send.py). A refusal is recorded with its reason.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder import texts
from rudder.db.models import Attachment, Conversation, new_id
from rudder.domain import activity
from rudder.feishu.resources import FILE_UPLOAD_MAX, IMAGE_UPLOAD_MAX
from rudder.media.blobs import CHUNK, TooLarge, spool
from rudder.media.config import MB, MediaConfig
from rudder.media.inbound import safe_name
from rudder.media.rundir import open_inside, resolve_outbound
from rudder.media.sniff import is_image, sniff

MAX_PER_RUN = 10
OUTGOING = "outgoing"


def _kind(mime: str, size: int) -> str:
    if is_image(mime) and size <= IMAGE_UPLOAD_MAX:
        return "image"
    if mime == "audio/ogg":
        return "audio"
    return "file"


async def handle_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while piece := handle.read(CHUNK):
        yield piece


def _inline_file(run_dir: Path, data: Mapping[str, Any]) -> Path | str:
    raw = data.get("data_base64")
    if not isinstance(raw, str):
        return texts.MEDIA_OUT_BAD_EVENT
    if len(raw) > (FILE_UPLOAD_MAX * 4) // 3 + 8:
        return texts.MEDIA_OUT_TOO_LARGE.format(limit=f"{FILE_UPLOAD_MAX // MB} MB")
    try:
        blob = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return texts.MEDIA_OUT_BAD_EVENT
    folder = run_dir / OUTGOING
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / f"{new_id()[:8]}-{safe_name(str(data.get('name') or ''), 'file')}"
    target.write_bytes(blob)
    return target


async def take(
    sessions: async_sessionmaker[AsyncSession],
    media: MediaConfig,
    *,
    run_id: str,
    conversation_id: str,
    reply_message_id: str,
    run_dir: Path,
    data: Mapping[str, Any],
) -> Attachment:
    """Check and store one attachment event; the row, `stored` or `refused` with a reason."""
    given = data.get("path")
    name_hint = data.get("name")
    source: Path | str
    if isinstance(given, str) and given:
        source = resolve_outbound(run_dir, given)
    elif "data_base64" in data:
        source = _inline_file(run_dir, data)
    else:
        source = texts.MEDIA_OUT_BAD_EVENT
    fallback = Path(given).name if isinstance(given, str) and given else "file"
    name = safe_name(name_hint if isinstance(name_hint, str) else None, "") or safe_name(
        source.name if isinstance(source, Path) else fallback, "file"
    )
    row = Attachment(
        id=new_id(), direction="out", run_id=run_id, message_id=reply_message_id, name=name
    )
    async with sessions() as session:
        count = await session.scalar(
            select(func.count(Attachment.id)).where(
                Attachment.run_id == run_id, Attachment.direction == "out"
            )
        )
    if isinstance(source, Path) and (count or 0) >= MAX_PER_RUN:
        source = texts.MEDIA_OUT_TOO_MANY.format(count=MAX_PER_RUN)
    if isinstance(source, Path):
        size = source.stat().st_size
        if size == 0:
            source = texts.MEDIA_OUT_EMPTY
        elif size > FILE_UPLOAD_MAX:
            source = texts.MEDIA_OUT_TOO_LARGE.format(limit=f"{FILE_UPLOAD_MAX // MB} MB")
    if isinstance(source, Path):
        opened = open_inside(run_dir, source)
        if isinstance(opened, str):
            source = opened
        else:
            try:
                with opened:
                    async with spool(
                        handle_chunks(opened), media.store.spool_dir, FILE_UPLOAD_MAX
                    ) as spooled:
                        row.mime_type = sniff(spooled.head)
                        row.size, row.sha256 = spooled.size, spooled.sha256
                        row.blob_key = await media.store.keep(spooled)
            except (OSError, TooLarge):  # changed while being read
                source = texts.MEDIA_NOT_STORED
    if isinstance(source, Path):
        row.kind, row.status = _kind(row.mime_type, row.size), "stored"
    else:
        row.kind, row.status, row.reason = "file", "refused", source
    async with sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        row.org_id, row.conversation_id = conv.org_id, conv.id
        session.add(row)
        activity.record(
            session,
            org_id=conv.org_id,
            actor="agent",
            action="media.attached" if row.status == "stored" else "media.refused",
            entity_type="attachment",
            entity_id=row.id,
            details={
                "run_id": run_id,
                "name": row.name,
                "size": row.size,
                "path": given[:300] if isinstance(given, str) else None,
                "reason": row.reason,
            },
            agent_id=conv.agent_id,
        )
    return row
