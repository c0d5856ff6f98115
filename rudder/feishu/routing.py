"""What an inbound event means for Rudder: the rules of ARCHITECTURE §5, steps 2–8, in order.

Each rule returns an (outcome, reason) pair that is kept on the `inbound_events` row and shown
in the agent's Integrations tab, so "why didn't the bot answer?" always has an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from rudder import chat, texts
from rudder.db.models import (
    Agent,
    ChatBinding,
    Conversation,
    Integration,
    Run,
)
from rudder.db.models import InboundEvent as InboundRow
from rudder.domain import budgets
from rudder.domain import runs as runs_domain
from rudder.feishu import bindings, chat_policy, group_context, handoff, names
from rudder.feishu.chat_convs import (
    binding_of,
    bound_conversation,
    new_conversation,
    replies_to_bot,
    topic_of,
)
from rudder.feishu.events import InboundEvent, InboundMessage, parse_event
from rudder.feishu.outbound import outbound_of, send_notice, send_private_notice
from rudder.feishu.regions import Region
from rudder.feishu.reply_stream import ReplyTarget
from rudder.media import inbound as media_inbound
from rudder.media import speech as media_speech
from rudder.services import Services

log = logging.getLogger(__name__)

NON_TEXT_NOTICE_EVERY_S = 60.0  # at most one "send text" notice per chat per minute
Outcome = tuple[str, str]


def _key(*parts: str) -> str:
    # Feishu's uuid field takes ≤ 50 chars; a hash keeps notices idempotent per event.
    return "n-" + hashlib.sha256(":".join(parts).encode()).hexdigest()[:40]


def mentions_bot(message: InboundMessage, bot_open_id: str | None) -> bool:
    # `@_all` is a mention of everyone, not of this bot (reference §4.2). A post's `at`
    # elements resolve to the same mentions[]; a few carry the open_id itself.
    if not bot_open_id:
        return False
    return bot_open_id in message.mentioned_open_ids or any(
        m.id is not None and m.id.open_id == bot_open_id for m in message.mentions
    )


async def route(
    services: Services, row_id: str, known: tuple[str, InboundEvent] | None = None
) -> Outcome:
    """Route the recorded event `row_id`. `known` is (integration_id, event) when the caller
    just recorded it, which saves reading the row back; otherwise it is read from the inbox."""
    async with services.sessions() as session:
        if known is None:
            row = await session.get(InboundRow, row_id)
            if row is None:
                return "failed", "event row vanished"
            known = row.integration_id, parse_event(row.payload)
        integration_id, event = known
        integration = await session.get(Integration, integration_id)
    if integration is None:
        return "refused", "integration no longer exists"
    # 2. Ownership: another app's event on this bot's transport is refused.
    if event.app_id != integration.app_id:
        return "refused", f"event belongs to app {event.app_id or '?'}, not {integration.app_id}"
    if integration.status != "connected":
        return "refused", f"integration is {integration.status}"
    message = event.message
    if message is None:
        return "ignored", f"event type {event.event_type} needs no action"
    # 3. Bots (this one or another) never trigger runs: no reply loops between bots.
    if message.sender_type != "user" or (
        message.sender_open_id and message.sender_open_id == integration.bot_open_id
    ):
        return "ignored", "sent by a bot"
    # 4. In groups: the bot's policy for this chat (chat_policy.py) says whether it answers
    # here at all; then only messages that @-mention it, or reply to one of its messages, are
    # for it, unless the policy lifts that.
    policy = chat_policy.DEFAULT
    if message.chat_type != "p2p":
        async with services.sessions() as session:
            policy = await chat_policy.effective(session, integration.id, message.chat_id)
        if not policy.answers:
            return "ignored", texts.CHAT_POLICY_NOT_ALLOWED
    if (
        message.chat_type != "p2p"
        and policy.require_mention
        and not mentions_bot(message, integration.bot_open_id)
        and not await replies_to_bot(services, integration, message)
    ):
        return "ignored", "group message does not mention this bot" + (
            " (@all is not a mention)" if message.mention_all else ""
        )
    # 5. Text, and media (images, files, voice, video, stickers, posts with pictures); anything
    # else gets a notice, but not more than once a minute per chat.
    if message.text is None and not message.resources:
        if not policy.quiet and await _notice_allowed(
            services, integration.id, message.chat_id, row_id
        ):
            await send_notice(
                services,
                integration.id,
                message.chat_id,
                texts.FEISHU_NON_TEXT,
                reply_to=message.message_id,
                key=_key("nontext", event.event_id),
            )
        return "dropped", f"{message.message_type} messages are not supported yet"
    # 6. The sender must be bound to an active member of the agent's organization, checked on
    # every message: a member disabled or removed after binding is asked to bind again.
    if not message.sender_open_id:
        return "held", "sender has no open_id; it cannot be linked to a Rudder member"
    sender_name = message.sender_name or await names.user_name(
        services, integration, message.sender_open_id
    )
    async with services.sessions() as session, session.begin():
        # Locked so two chats of one sender can't both issue a prompt (PostgreSQL; SQLite
        # serialises writers anyway).
        integration = await session.get(Integration, integration.id, with_for_update=True)
        assert integration is not None
        user = await bindings.bound_user(session, integration, message.sender_open_id)
        if user is None and policy.audience == "tenant" and policy.default_user_id:
            # The group lets anyone in it address the bot, as the member it names.
            user = await chat_policy.default_member(session, integration, policy)
        code = prompted_at = None
        if user is None and not policy.quiet:  # a quiet group gets no binding prompt
            prompted_at = await bindings.recent_prompt(session, integration, message.sender_open_id)
            if prompted_at is None:
                code = await bindings.issue_code(
                    session,
                    integration,
                    message.sender_open_id,
                    message.sender_union_id,
                    display_name=sender_name,
                )
    if user is None and policy.quiet:
        return "ignored", "sender is not linked to a Rudder member; quiet group: no prompt"
    if user is None:
        if code is None:
            assert prompted_at is not None
            return "held", (
                "sender is not linked to a Rudder member; binding prompt already sent at "
                f"{prompted_at:%H:%M:%S} UTC (at most one every "
                f"{int(bindings.PROMPT_EVERY.total_seconds() // 60)} minutes)"
            )
        return await _prompt(services, integration, message, event, code)
    # 7. Commands.
    text = (message.text or "").strip()
    command = text.split(None, 1)[0].lower() if text.startswith("/") else None
    if command == "/stop":
        return await _stop(services, integration, message, event)
    if command == "/new":
        await new_conversation(services, integration, message, user.id)
        await send_notice(
            services,
            integration.id,
            message.chat_id,
            texts.FEISHU_NEW_STARTED,
            reply_to=message.message_id,
            key=_key("new", event.event_id),
        )
        return "command", "/new: started a fresh conversation"
    if command == "/help":
        await send_notice(
            services,
            integration.id,
            message.chat_id,
            texts.FEISHU_HELP,
            reply_to=message.message_id,
            key=_key("help", event.event_id),
        )
        return "command", "/help"
    if not text and not message.resources:
        return "ignored", "empty message"
    # 8. A message for the agent, posted once per Feishu message, with its attachments
    # (downloaded now: after the ack, outside any transaction).
    async with services.sessions() as session:
        conv = await bound_conversation(services, session, integration, message, user.id)
        if await chat.posted_message(session, conv, message.message_id) is not None:
            return "processed", "message was already posted; not posted again"
        await session.commit()  # a new chat's conversation and binding
        agent = await session.get(Agent, integration.agent_id)
    # The group's recent messages, when the agent and this group's policy ask for them, are
    # read while the attachments download; neither holds a transaction open.
    bounds = group_context.bounds_for(agent, policy, message.chat_type)
    fetched, context = await asyncio.gather(
        _fetch_media(services, integration, message),
        _group_context(services, integration, message, event, bounds, conv.id),
    )
    context_note = _context_summary(services, integration.id, bounds, context)
    conv_id = conv.id
    try:
        async with services.sessions() as session:
            conv = await session.get(Conversation, conv_id) or conv
            _, run = await chat.post_user_message(
                services,
                session,
                conv,
                media_inbound.body_for(text, fetched),
                author_user_id=user.id,
                source="feishu",
                external_sender_id=message.sender_open_id,
                external_message_id=message.message_id,
                attachments=media_inbound.rows_of(fetched),
            )
    except IntegrityError:
        # Another process routed the same event meanwhile (a takeover while its holder still
        # ran): the database keeps one post per Feishu message and conversation (0014).
        async with services.sessions() as session:
            again = await session.get(Conversation, conv_id)
            if (
                again is None
                or await chat.posted_message(session, again, message.message_id) is None
            ):
                raise
        return "processed", "message was already posted by another process; not posted again"
    notice = media_inbound.notice_for(fetched)
    if notice is not None and not policy.quiet:
        await send_notice(
            services,
            integration.id,
            message.chat_id,
            notice,
            reply_to=message.message_id,
            key=_key("media", event.event_id),
        )
    if run.status == budgets.HELD:
        # Budget hook: the message is kept and answered when the agent resumes.
        return await _held_for_budget(services, integration, message, event, run)
    # The reply's card goes out while the run starts, not after.
    outbound_of(services).expect(
        run.id,
        ReplyTarget(
            integration_id=integration.id,
            org_id=integration.org_id,
            region=Region(integration.region),
            style=integration.reply_style or "streaming_card",
            chat_id=message.chat_id,
            reply_to=message.message_id,
            reply_message_id=None,
            conversation_id=conv.id,
            in_thread=conv.external_thread_id is not None,
        ),
    )
    return "processed", "queued a run" + media_inbound.summary(fetched) + context_note


async def _group_context(
    services: Services,
    integration: Integration,
    message: InboundMessage,
    event: InboundEvent,
    bounds: group_context.Bounds | None,
    conversation_id: str,
) -> list[dict[str, Any]] | None:
    """The context kept for the run (None: off); stored before the run is queued."""
    if bounds is None:
        return None
    items = await group_context.gather(
        services, integration, message, event, bounds, conversation_id
    )
    if items:
        await group_context.keep(services, integration.id, message.message_id, items)
    return items


def _context_summary(
    services: Services,
    integration_id: str,
    bounds: group_context.Bounds | None,
    context: list[dict[str, Any]] | None,
) -> str:
    if bounds is None or context is None:
        return ""
    if not context and group_context.scope_missing(services, integration_id):
        return f"; no group context: the app lacks the {group_context.GROUP_SCOPE} permission"
    if not context:
        return "; no group context"
    return f"; with {len(context)} earlier message(s) of the group as context"


async def _fetch_media(
    services: Services, integration: Integration, message: InboundMessage
) -> list[media_inbound.Fetched]:
    media = services.runs.media
    if not message.resources or media is None:
        return []
    bot = await outbound_of(services).bot(integration.id)
    voice = media_speech.should_try(integration.id) and any(
        r.kind == "audio" for r in message.resources
    )
    fetched = await media_inbound.fetch_all(
        bot, media, message.message_id, message.resources, decode_voice=voice
    )
    await media_speech.transcribe(services, integration, bot, fetched)
    return fetched


async def _prompt(
    services: Services,
    integration: Integration,
    message: InboundMessage,
    event: InboundEvent,
    code: bindings.Issued,
) -> Outcome:
    """The binding prompt, to the sender alone: in their direct chat, or from a group by a
    private message (the group only hears that one was sent). Anyone who reads the group must
    not get the link, and the confirmation code is never anywhere else (docs/feishu-chats.md)."""
    assert message.sender_open_id is not None
    product = bindings.product(integration.region)
    url = f"{services.settings.effective_public_url}/bind/feishu/{code.link}"
    prompt = texts.FEISHU_BINDING_PROMPT.format(product=product, url=url, code=code.confirmation)
    if message.chat_type == "p2p":
        await send_notice(
            services,
            integration.id,
            message.chat_id,
            prompt,
            reply_to=message.message_id,
            key=_key("bind", event.event_id),
        )
        return "held", "sender is not linked to a Rudder member; binding prompt sent"
    delivered = await send_private_notice(
        services,
        integration.id,
        message.sender_open_id,
        prompt,
        key=_key("bind-private", event.event_id),
    )
    if not delivered:
        # Not sent, so no throttle: the next message (in a direct chat) gets a new prompt.
        async with services.sessions() as session, session.begin():
            await bindings.forget_code(session, code.link)
    note = texts.FEISHU_BINDING_SENT_PRIVATELY if delivered else texts.FEISHU_BINDING_PRIVATE_FAILED
    await send_notice(
        services,
        integration.id,
        message.chat_id,
        note.format(product=product),
        reply_to=message.message_id,
        key=_key("bind", event.event_id),
    )
    if not delivered:
        return "held", (
            "sender is not linked to a Rudder member; the private binding prompt could not be "
            "delivered (the group was told to use a direct chat)"
        )
    return "held", "sender is not linked to a Rudder member; binding prompt sent privately"


async def _held_for_budget(
    services: Services,
    integration: Integration,
    message: InboundMessage,
    event: InboundEvent,
    run: Run,
) -> Outcome:
    """One notice per chat and budget pause: the first held message of the conversation."""
    async with services.sessions() as session:
        agent = await session.get(Agent, run.agent_id)
        held = await budgets.held_count(session, run.conversation_id)
    if held <= 1 and agent is not None:
        await send_notice(
            services,
            integration.id,
            message.chat_id,
            texts.AGENT_BUDGET_HELD.format(agent=agent.name),
            reply_to=message.message_id,
            key=_key("budget", event.event_id),
        )
    return "held", "the agent has reached its monthly budget; the message waits for a resume"


async def _notice_allowed(
    services: Services, integration_id: str, chat_id: str, row_id: str
) -> bool:
    last = services.components.nontext_notices
    now = time.monotonic()
    if now - last.get((integration_id, chat_id), -1e9) < NON_TEXT_NOTICE_EVERY_S:
        return False
    last[(integration_id, chat_id)] = now
    return True


async def _stop(
    services: Services, integration: Integration, message: InboundMessage, event: InboundEvent
) -> Outcome:
    async with services.sessions() as session:
        binding = await session.scalar(
            select(ChatBinding).where(
                *binding_of(integration.id, message.chat_id, topic_of(message))
            )
        )
        active = (
            list(await runs_domain.active_runs(session, binding.conversation_id)) if binding else []
        )
        stopped = await chat.cancel_runs(
            services, session, [r for r in active if r.status == "running"] or active[:1]
        )
        if message.chat_type != "p2p":
            # Hand-offs going on in this chat (or topic) stop as a whole, whichever bot is told.
            stopped += await handoff.stop_chains_in(
                services, session, integration.org_id, message.chat_id, topic_of(message)
            )
    text = texts.FEISHU_STOPPED if stopped else texts.FEISHU_NOTHING_RUNNING
    await send_notice(
        services,
        integration.id,
        message.chat_id,
        text,
        reply_to=message.message_id,
        key=_key("stop", event.event_id),
    )
    return "command", "/stop: " + ("stopped the reply" if stopped else "nothing was running")
