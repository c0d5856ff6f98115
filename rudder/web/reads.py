"""Unread marks: when a member last looked at a conversation, kept per user in the database.

A conversation is unread for a member when something was posted in it (`last_message_at`) after
they last opened it; a conversation they never opened is unread once it has messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Conversation, ConversationRead, utcnow


async def mark_seen(
    session: AsyncSession, user_id: str | None, conversation_id: str, at: datetime | None = None
) -> None:
    """Remember that `user_id` has seen the conversation up to now (the caller commits)."""
    if user_id is None:
        return  # an agent token reads conversations without a person behind it
    when = at or utcnow()
    changed = await session.execute(
        update(ConversationRead)
        .where(
            ConversationRead.user_id == user_id,
            ConversationRead.conversation_id == conversation_id,
        )
        .values(last_seen_at=when)
    )
    if getattr(changed, "rowcount", 0):
        return
    try:
        async with session.begin_nested():
            session.add(
                ConversationRead(
                    user_id=user_id, conversation_id=conversation_id, last_seen_at=when
                )
            )
    except IntegrityError:
        # Another tab inserted the row first; theirs is as recent as ours.
        pass


async def unread_ids(
    session: AsyncSession, user_id: str | None, conversations: Iterable[Conversation]
) -> set[str]:
    convs = [c for c in conversations if c.last_message_at is not None]
    if user_id is None or not convs:
        return set()
    rows = await session.execute(
        select(ConversationRead.conversation_id, ConversationRead.last_seen_at).where(
            ConversationRead.user_id == user_id,
            ConversationRead.conversation_id.in_([c.id for c in convs]),
        )
    )
    seen: dict[str, datetime] = {row[0]: row[1] for row in rows}
    unread: set[str] = set()
    for c in convs:
        last = seen.get(c.id)
        assert c.last_message_at is not None
        if last is None or c.last_message_at > last:
            unread.add(c.id)
    return unread
