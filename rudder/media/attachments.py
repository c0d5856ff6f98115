"""Attachment rows: created with their message, listed for a conversation, shown, expired."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import Attachment, Conversation, Message, new_id, utcnow
from rudder.domain import activity
from rudder.media.config import MediaConfig

log = logging.getLogger(__name__)


def attach(
    session: AsyncSession, conv: Conversation, message: Message, rows: Iterable[Attachment]
) -> None:
    """Add `rows` as the attachments of `message`, each with its activity entry."""
    for row in rows:
        row.id = row.id or new_id()
        row.org_id, row.conversation_id, row.message_id = conv.org_id, conv.id, message.id
        session.add(row)
        action = "media.fetched" if row.status == "stored" else f"media.{row.status}"
        details: dict[str, Any] = {
            "conversation_id": conv.id,
            "message_id": message.id,
            "name": row.name,
            "kind": row.kind,
            "size": row.size,
            "mime_type": row.mime_type,
        }
        if row.reason:
            details["reason"] = row.reason
        if row.transcript:
            details["transcribed"] = True
        activity.record(
            session,
            org_id=conv.org_id,
            actor="system",
            action=action,
            entity_type="attachment",
            entity_id=row.id,
            details=details,
            agent_id=conv.agent_id,
        )


async def for_messages(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, list[Attachment]]:
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_(list(message_ids)))
        .order_by(Attachment.created_at, Attachment.id)
    )
    found: dict[str, list[Attachment]] = {}
    for row in rows:
        assert row.message_id is not None
        found.setdefault(row.message_id, []).append(row)
    return found


def view(row: Attachment) -> dict[str, Any]:
    """What the API and the conversation page show (the bytes are behind `url`)."""
    url = (
        f"/api/conversations/{row.conversation_id}/attachments/{row.id}"
        if row.status == "stored"
        else None
    )
    return {
        "id": row.id,
        "direction": row.direction,
        "kind": row.kind,
        "name": row.name,
        "mime_type": row.mime_type,
        "size": row.size,
        "sha256": row.sha256,
        "status": row.status,
        "reason": row.reason,
        "transcript": row.transcript,
        "url": url,
    }


async def expire(sessions: async_sessionmaker[AsyncSession], media: MediaConfig) -> int:
    """Remove the bytes of attachments older than the retention period; rows stay, `expired`."""
    if media.retention_days <= 0:
        return 0
    before = utcnow() - timedelta(days=media.retention_days)
    async with sessions() as session:
        rows = list(
            await session.scalars(
                select(Attachment)
                .where(Attachment.status == "stored", Attachment.created_at < before)
                .limit(500)
            )
        )
    for row in rows:
        if row.blob_key:
            try:
                await media.store.delete(row.blob_key)
            except OSError:
                log.warning("attachment %s: its bytes could not be removed", row.id)
                continue
        async with sessions() as session, session.begin():
            found = await session.get(Attachment, row.id)
            if found is not None:
                found.status, found.blob_key = "expired", None
    return len(rows)


ORPHAN_AFTER_S = 24 * 3600.0


async def remove_orphans(sessions: async_sessionmaker[AsyncSession], media: MediaConfig) -> int:
    """Blobs no attachment points at, a day after they were written: what a crash between
    storing a file and posting its message left behind."""
    keys = await media.store.keys_older_than(ORPHAN_AFTER_S)
    if not keys:
        return 0
    async with sessions() as session:
        used = set(
            await session.scalars(select(Attachment.blob_key).where(Attachment.blob_key.in_(keys)))
        )
    removed = 0
    for key in keys:
        if key not in used:
            await media.store.delete(key)
            removed += 1
    return removed
