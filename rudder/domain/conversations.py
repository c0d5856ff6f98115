"""Conversations and their messages; Feishu-bound ones are read-only locally, Fork copies them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import Agent, Conversation, Message, utcnow
from rudder.domain import activity
from rudder.domain.errors import ConversationBound, NotFound

TITLE_MAX = 80


async def get_conversation(session: AsyncSession, conversation_id: str) -> Conversation:
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound("conversation not found")
    return conv


async def list_conversations(
    session: AsyncSession, org_id: str, agent_id: str | None = None, limit: int = 200
) -> list[Conversation]:
    query = select(Conversation).where(Conversation.org_id == org_id)
    if agent_id:
        query = query.where(Conversation.agent_id == agent_id)
    query = query.order_by(
        func.coalesce(Conversation.last_message_at, Conversation.created_at).desc()
    ).limit(limit)
    return list(await session.scalars(query))


async def create_conversation(
    session: AsyncSession,
    agent: Agent,
    *,
    title: str | None = None,
    user_id: str | None = None,
    actor: str,
) -> Conversation:
    conv = Conversation(
        org_id=agent.org_id,
        agent_id=agent.id,
        title=(title or "").strip()[:300] or f"Chat with {agent.name}",
        created_by_user_id=user_id,
    )
    session.add(conv)
    await session.flush()
    activity.record(
        session,
        org_id=agent.org_id,
        actor=actor,
        action="conversation.created",
        entity_type="conversation",
        entity_id=conv.id,
    )
    return conv


async def next_seq(session: AsyncSession, conversation_id: str) -> int:
    current = await session.scalar(
        select(func.max(Message.seq)).where(Message.conversation_id == conversation_id)
    )
    return (current or 0) + 1


async def append_message(
    session: AsyncSession,
    conv: Conversation,
    *,
    role: str,
    body: str,
    status: str = "completed",
    author_user_id: str | None = None,
    author_agent_id: str | None = None,
    run_id: str | None = None,
    external_sender_id: str | None = None,
    external_message_id: str | None = None,
) -> Message:
    message = Message(
        conversation_id=conv.id,
        seq=await next_seq(session, conv.id),
        role=role,
        body=body,
        status=status,
        author_user_id=author_user_id,
        author_agent_id=author_agent_id,
        run_id=run_id,
        external_sender_id=external_sender_id,
        external_message_id=external_message_id,
    )
    session.add(message)
    conv.last_message_at = utcnow()
    await session.flush()
    return message


async def list_messages(
    session: AsyncSession, conversation_id: str, after_seq: int = 0, limit: int = 500
) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.seq > after_seq)
        .order_by(Message.seq)
        .limit(limit)
    )
    return list(rows)


async def recent_messages(
    session: AsyncSession, conversation_id: str, limit: int, up_to_seq: int | None = None
) -> list[Message]:
    """The newest `limit` messages (up to `up_to_seq` when given), oldest first."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if up_to_seq is not None:
        query = query.where(Message.seq <= up_to_seq)
    rows = list(await session.scalars(query.order_by(Message.seq.desc()).limit(limit)))
    rows.reverse()
    return rows


def ensure_writable(conv: Conversation) -> None:
    if conv.bound:
        raise ConversationBound(texts.BOUND_CONVERSATION_READ_ONLY)


async def fork(
    session: AsyncSession,
    conv: Conversation,
    *,
    user_id: str | None,
    up_to_message_id: str | None = None,
    actor: str,
) -> Conversation:
    """A new local conversation with a copy of the history, pointing back at its origin."""
    messages = await list_messages(session, conv.id, limit=100_000)
    if up_to_message_id is not None:
        ids = [m.id for m in messages]
        if up_to_message_id not in ids:
            raise NotFound("message not found in this conversation")
        messages = messages[: ids.index(up_to_message_id) + 1]
    last = messages[-1] if messages else None
    copy = Conversation(
        org_id=conv.org_id,
        agent_id=conv.agent_id,
        title=f"Fork of {conv.title}"[:300],
        created_by_user_id=user_id,
        source="local",
        bound=False,
        forked_from_conversation_id=conv.id,
        forked_from_message_id=last.id if last else None,
    )
    session.add(copy)
    await session.flush()
    for seq, m in enumerate(messages, start=1):
        if m.status == "streaming":
            continue  # a reply still being written is not history yet
        session.add(
            Message(
                conversation_id=copy.id,
                seq=seq,
                role=m.role,
                body=m.body,
                status=m.status,
                author_user_id=m.author_user_id,
                author_agent_id=m.author_agent_id,
                external_sender_id=m.external_sender_id,
                created_at=m.created_at,
            )
        )
    copy.last_message_at = utcnow()
    activity.record(
        session,
        org_id=conv.org_id,
        actor=actor,
        action="conversation.forked",
        entity_type="conversation",
        entity_id=copy.id,
        details={"from": conv.id},
    )
    await session.flush()
    return copy
