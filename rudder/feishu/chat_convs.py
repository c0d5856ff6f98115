"""Which conversation a Feishu message belongs to: the chat's, or its topic's.

Each chat of a bot is bound to one active conversation (`chat_bindings`); each topic of a chat
(a message's `thread_id`: a topic group's topic, or a thread opened in a normal group) to one of
its own, bound to the chat and the topic. `/new` and the card's New conversation end a binding
and bind a fresh conversation (`start_fresh`). Whether a group message addresses the bot by
replying to one of its messages is decided here too, from what the bot sent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import Agent, ChatBinding, Conversation, Integration, OutboxItem, utcnow
from rudder.feishu import events, names
from rudder.feishu.events import InboundMessage
from rudder.services import Services

TOPIC_TITLE_CHARS = 60


async def replies_to_bot(
    services: Services, integration: Integration, message: InboundMessage
) -> bool:
    """The message answers (quotes, or replies in a topic to) one of this bot's own messages:
    that addresses the bot as an @-mention would. Only what the bot sent counts."""
    if not message.parent_id:
        return False
    async with services.sessions() as session:
        found = await session.scalar(
            select(OutboxItem.id)
            .where(
                OutboxItem.feishu_message_id == message.parent_id,
                OutboxItem.integration_id == integration.id,
                OutboxItem.status == "sent",
            )
            .limit(1)
        )
    return found is not None


def topic_of(message: InboundMessage) -> str | None:
    """The topic a message belongs to: its thread (a topic group's topic, or a thread opened in
    a normal group). A quoted reply without a thread stays in the chat's own conversation."""
    return message.thread_id


async def chat_name(services: Services, integration: Integration, message: InboundMessage) -> str:
    if message.chat_type == "p2p":
        person = message.sender_name or await names.user_name(
            services, integration, message.sender_open_id
        )
        return texts.CHAT_TITLE_DM.format(name=person) if person else texts.CHAT_TITLE_DM_UNNAMED
    return await names.chat_name(services, integration, message.chat_id) or texts.CHAT_TITLE_GROUP


def binding_of(integration_id: str, chat_id: str, topic: str | None) -> list[Any]:
    """The where clauses of the active binding of a chat, or of one topic in it."""
    return [
        ChatBinding.integration_id == integration_id,
        ChatBinding.external_chat_id == chat_id,
        ChatBinding.external_thread_id.is_(None)
        if topic is None
        else ChatBinding.external_thread_id == topic,
        ChatBinding.active.is_(True),
    ]


async def _topic_title(
    services: Services, integration: Integration, message: InboundMessage
) -> str:
    """A topic's conversation is named after the topic's first message (its thread root)."""
    text = message.text or ""
    if message.root_id and message.root_id != message.message_id:
        text = await names.message_text(services, integration, message.root_id) or text
    line = " ".join(events.strip_mentions(text).split())
    short = line[:TOPIC_TITLE_CHARS] + ("…" if len(line) > TOPIC_TITLE_CHARS else "")
    return short or texts.CHAT_TITLE_TOPIC


async def _create_bound(
    session: AsyncSession,
    integration: Integration,
    chat_id: str,
    chat_type: str,
    user_id: str,
    name: str,
    topic: str | None = None,
    topic_title: str | None = None,
) -> Conversation:
    agent = await session.get(Agent, integration.agent_id)
    assert agent is not None
    conv = Conversation(
        org_id=integration.org_id,
        agent_id=integration.agent_id,
        created_by_user_id=user_id,
        title=f"{topic_title or name} · {agent.name}",
        source="feishu",
        integration_id=integration.id,
        region=integration.region,
        external_chat_id=chat_id,
        external_chat_type=chat_type,
        external_chat_name=name,
        external_thread_id=topic,
        bound=True,
    )
    session.add(conv)
    await session.flush()
    session.add(
        ChatBinding(
            integration_id=integration.id,
            external_chat_id=chat_id,
            external_thread_id=topic,
            conversation_id=conv.id,
        )
    )
    await session.flush()
    return conv


async def bound_conversation(
    services: Services,
    session: AsyncSession,
    integration: Integration,
    message: InboundMessage,
    user_id: str,
) -> Conversation:
    topic = topic_of(message)
    binding = await session.scalar(
        select(ChatBinding).where(*binding_of(integration.id, message.chat_id, topic))
    )
    if binding is not None:
        conv = await session.get(Conversation, binding.conversation_id)
        if conv is not None:
            return conv
    # Read the chat's name before writing: no network call while holding the write lock.
    name = await chat_name(services, integration, message)
    return await _create_bound(
        session,
        integration,
        message.chat_id,
        message.chat_type,
        user_id,
        name,
        topic,
        await _topic_title(services, integration, message) if topic else None,
    )


async def new_conversation(
    services: Services, integration: Integration, message: InboundMessage, user_id: str
) -> Conversation:
    name = await chat_name(services, integration, message)
    topic = topic_of(message)
    title = await _topic_title(services, integration, message) if topic else None
    fresh = await start_fresh(
        services,
        integration,
        message.chat_id,
        message.chat_type,
        name,
        user_id,
        topic=topic,
        topic_title=title,
    )
    assert fresh is not None
    return fresh


async def start_fresh(
    services: Services,
    integration: Integration,
    chat_id: str,
    chat_type: str,
    name: str,
    user_id: str,
    *,
    topic: str | None = None,
    topic_title: str | None = None,
    replacing: str | None = None,
) -> Conversation | None:
    """End the chat's active binding and bind a fresh conversation (`/new`, the card's New
    conversation). With `replacing`, only when that conversation is still the chat's bound
    one: a second press on an old card starts nothing (None)."""
    async with services.sessions() as session, session.begin():
        old = list(
            await session.scalars(
                select(ChatBinding)
                .where(*binding_of(integration.id, chat_id, topic))
                .with_for_update()
            )
        )
        if replacing is not None and [b.conversation_id for b in old] != [replacing]:
            return None
        for binding in old:
            binding.active, binding.ended_at = False, utcnow()
        await session.flush()
        return await _create_bound(
            session, integration, chat_id, chat_type, user_id, name, topic, topic_title
        )


async def chat_conversation(
    session: AsyncSession,
    integration: Integration,
    like: Conversation,
    user_id: str,
) -> Conversation:
    """This bot's bound conversation for the chat (and topic) of `like`, another bot's
    conversation there, created when it has none: where a hand-off to this bot runs."""
    chat_id = like.external_chat_id
    assert chat_id is not None
    topic = like.external_thread_id
    binding = await session.scalar(
        select(ChatBinding).where(*binding_of(integration.id, chat_id, topic))
    )
    if binding is not None:
        conv = await session.get(Conversation, binding.conversation_id)
        if conv is not None:
            return conv
    name = like.external_chat_name or texts.CHAT_TITLE_GROUP
    title = like.title.rsplit(" · ", 1)[0] if topic else None
    return await _create_bound(
        session,
        integration,
        chat_id,
        like.external_chat_type or "group",
        user_id,
        name,
        topic,
        title,
    )
