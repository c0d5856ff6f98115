"""Group context: the messages that preceded the one an agent answers in a Feishu group.

Opt-in twice: the agent's switch (`agents.group_context`, which also makes Connect ask for the
permission) and the group's policy (`context` with its bounds, chat_policy.py). Fetched in
routing after the ack, outside any transaction, with a timeout, from the message history API
(`GET /open-apis/im/v1/messages`, newest first); whatever goes wrong, the reply goes on without
it. What is kept for the run (`feishu_group_contexts`) is never:

- from another topic: a topic's message reads its thread's container; a message in the chat's
  main conversation reads the chat's container, where topics show only their first message,
  and those are left out too;
- from before the bot joined the chat: the newest `im.chat.member.bot.added_v1` Rudder received
  for the chat, by Feishu's own clock (its header's `create_time`). A bot that was already in
  the group when it was connected has no such event: then the first event Rudder recorded from
  the chat stands for it (the bot was surely in the chat by then), so nothing older is given;
- the message answered, what came after it, or what the conversation already holds (the
  messages it posted, the bot's own replies and notices);
- a card (the reply cards of bots: their buttons and status lines are noise, not talk), or a
  notice a Rudder bot sent (binding prompts, "send text" and the like: its outbox says so).

Bounded by count, age (from the message answered) and characters (newest first: the oldest are
the ones dropped). Senders are named with the name resolver (names.py), then the bindings' names.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, InboundEvent, Integration, Message, OutboxItem
from rudder.db.models_policy import GroupContext
from rudder.domain import activity
from rudder.feishu import names, reply_calls
from rudder.feishu.chat_policy import Policy
from rudder.feishu.errors import PERMISSION_DENIED, FeishuError
from rudder.feishu.events import InboundEvent as Event
from rudder.feishu.events import InboundMessage, content_text
from rudder.services import Services

log = logging.getLogger(__name__)

PATH = "/open-apis/im/v1/messages"
GROUP_SCOPE = "im:message.group_msg"
BOT_ADDED = "im.chat.member.bot.added_v1"
FETCH_TIMEOUT_S = 4.0  # the reply waits for this at most
PAGE_SIZE_MAX = 50  # Feishu's page_size limit
MAX_PAGES = 3  # left-out messages (topics, cards, bots) may need a second page; never many
OLD_ROWS_READ = 500
TRUNCATED_MIN = 40  # a message cut shorter than this is dropped instead
NAME_MAX = 80
_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")
_MEDIA_LABELS = {
    "image": "[image]",
    "file": "[file]",
    "audio": "[voice message]",
    "media": "[video]",
    "sticker": "[sticker]",
}
_LEFT_OUT_TYPES = frozenset({"interactive", "system"})


@dataclass(frozen=True, slots=True)
class Bounds:
    messages: int
    hours: int
    chars: int


def bounds_for(agent: Agent | None, policy: Policy, chat_type: str) -> Bounds | None:
    """The context this message gets, or None (off: no history call at all)."""
    if chat_type == "p2p" or agent is None or not agent.group_context or not policy.context:
        return None
    return Bounds(policy.context_messages, policy.context_hours, policy.context_chars)


async def set_enabled(session: AsyncSession, agent: Agent, enabled: bool, *, actor: str) -> None:
    """The agent's switch; a change is in the activity log."""
    if agent.group_context == enabled:
        return
    agent.group_context = enabled
    activity.record(
        session,
        org_id=agent.org_id,
        actor=actor,
        action="feishu.group_context_changed",
        entity_type="agent",
        entity_id=agent.id,
        agent_id=agent.id,
        details={"enabled": enabled},
    )


def scope_missing(services: Services, integration_id: str) -> bool:
    """Feishu refused the bot a group's history lately (the Integrations tab says so)."""
    return names.book(services).scope_missing(integration_id, GROUP_SCOPE)


async def gather(
    services: Services,
    integration: Integration,
    message: InboundMessage,
    event: Event,
    bounds: Bounds,
    conversation_id: str,
) -> list[dict[str, Any]]:
    """The context of `message`, oldest first; [] when it can't be had (never raises)."""
    book = names.book(services)
    if book.scope_missing(integration.id, GROUP_SCOPE):
        return []  # asked again once RETRY_MISSING_S has passed (the scope may be added)
    try:
        items = await asyncio.wait_for(
            _gather(services, integration, message, event, bounds, conversation_id),
            FETCH_TIMEOUT_S,
        )
    except TimeoutError:
        log.info("group context of %s: the history API took too long", message.message_id)
        return []
    except FeishuError as exc:
        if exc.code == PERMISSION_DENIED:
            book.missing.setdefault(integration.id, {})[GROUP_SCOPE] = time.monotonic()
            log.warning(
                "bot %s may not read group messages (%s): answering without group context",
                integration.app_id,
                exc.msg,
            )
        else:
            log.info("group context of %s: %s", message.message_id, exc)
        return []
    except Exception:  # context is a help, never a reason not to answer
        log.exception("group context of %s failed", message.message_id)
        return []
    book.missing.get(integration.id, {}).pop(GROUP_SCOPE, None)
    return items


async def keep(
    services: Services, integration_id: str, message_id: str, items: list[dict[str, Any]]
) -> None:
    """Store the context for the run (a redelivered message keeps the first one)."""
    try:
        async with services.sessions() as session, session.begin():
            exists = await session.scalar(
                select(GroupContext.id).where(
                    GroupContext.integration_id == integration_id,
                    GroupContext.message_id == message_id,
                )
            )
            if exists is None:
                session.add(
                    GroupContext(integration_id=integration_id, message_id=message_id, items=items)
                )
    except IntegrityError:
        pass  # another delivery of the same message stored it first


# -- the fetch -----------------------------------------------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ms(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _created_ms(payload: dict[str, Any]) -> int | None:
    created = _ms(_obj(_obj(payload.get("event")).get("message")).get("create_time"))
    return created if created is not None else _ms(_obj(payload.get("header")).get("create_time"))


async def joined_ms(services: Services, integration_id: str, chat_id: str) -> int | None:
    """When the bot (last) joined the chat, by Feishu's clock; None when nothing is known."""
    async with services.sessions() as session:
        added = await session.scalar(
            select(InboundEvent.payload)
            .where(
                InboundEvent.integration_id == integration_id,
                InboundEvent.chat_id == chat_id,
                InboundEvent.event_type == BOT_ADDED,
            )
            .order_by(InboundEvent.received_at.desc())
            .limit(1)
        )
        if added is None:
            # Rows recorded before the inbox kept a membership event's chat: read the payload.
            older = await session.execute(
                select(InboundEvent.payload)
                .where(
                    InboundEvent.integration_id == integration_id,
                    InboundEvent.chat_id.is_(None),
                    InboundEvent.event_type == BOT_ADDED,
                )
                .order_by(InboundEvent.received_at.desc())
                .limit(OLD_ROWS_READ)
            )
            added = next(
                (p for (p,) in older if _obj(_obj(p).get("event")).get("chat_id") == chat_id),
                None,
            )
        found = _created_ms(added) if isinstance(added, dict) else None
        if found is not None:
            return found
        # Already in the group when connected: the first event from the chat stands for it.
        first = await session.scalar(
            select(InboundEvent.payload)
            .where(InboundEvent.integration_id == integration_id, InboundEvent.chat_id == chat_id)
            .order_by(InboundEvent.received_at)
            .limit(1)
        )
    return _created_ms(first) if isinstance(first, dict) else None


def _one_line(value: str) -> str:
    return " ".join(value.split())[:NAME_MAX]


def _text(item: dict[str, Any]) -> str | None:
    msg_type = str(item.get("msg_type") or "")
    if msg_type in _LEFT_OUT_TYPES:
        return None
    if msg_type in _MEDIA_LABELS:
        return _MEDIA_LABELS[msg_type]
    body = _obj(item.get("body"))
    text = content_text(msg_type, str(body.get("content") or "")) if body else None
    if text is None:
        return f"[{msg_type} message]" if msg_type not in ("text", "post") else None
    mentions = {
        str(m.get("key")): _one_line(str(m.get("name") or ""))
        for m in item.get("mentions") or []
        if isinstance(m, dict) and m.get("key")
    }

    def named(match: re.Match[str]) -> str:
        key = match.group(0)
        if key == "@_all":
            return "@all"
        return "@" + mentions[key] if mentions.get(key) else key

    text = _PLACEHOLDER.sub(named, text).strip()
    return text or None


async def _gather(
    services: Services,
    integration: Integration,
    message: InboundMessage,
    event: Event,
    bounds: Bounds,
    conversation_id: str,
) -> list[dict[str, Any]]:
    trigger_ms = _created_ms(event.payload)
    if trigger_ms is None:
        return []
    joined = await joined_ms(services, integration.id, message.chat_id)
    if joined is None:
        return []
    cutoff = max(joined, trigger_ms - bounds.hours * 3_600_000)
    async with services.sessions() as session:
        known = set(
            await session.scalars(
                select(Message.external_message_id).where(
                    Message.conversation_id == conversation_id,
                    Message.external_message_id.is_not(None),
                )
            )
        )
    known.add(message.message_id)
    params: dict[str, Any] = {
        "sort_type": "ByCreateTimeDesc",
        "page_size": str(min(PAGE_SIZE_MAX, bounds.messages + 10)),
    }
    if message.thread_id:
        params.update(container_id_type="thread", container_id=message.thread_id)
    else:
        # Seconds, both ends inclusive; the exact cut is made on the milliseconds below.
        params.update(
            container_id_type="chat",
            container_id=message.chat_id,
            start_time=str(cutoff // 1000),
            end_time=str(trigger_ms // 1000 + 1),
        )
    from rudder.feishu.bots import bot_for

    bot = await bot_for(services, integration.id)
    picked: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        body = await bot.call("GET", PATH, params=params)
        data = _obj(body.get("data"))
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        notices = await _rudder_notices(services, items)
        older = False
        for item in items:
            if item.get("message_id") in notices:
                continue  # a Rudder bot's notice (binding prompts, "send text", …): noise
            at = _ms(item.get("create_time"))
            if at is None or at >= trigger_ms or item.get("message_id") in known:
                continue
            if at < cutoff:
                older = True  # newest first: everything after this is older still
                break
            if item.get("deleted") or item.get("chat_id", message.chat_id) != message.chat_id:
                continue
            if not message.thread_id and item.get("thread_id"):
                continue  # a topic's first message: that topic is a conversation of its own
            sender = _obj(item.get("sender"))
            if sender.get("id_type") == "app_id" and sender.get("id") == integration.app_id:
                continue  # the bot's own replies and notices
            text = _text(item)
            if text is not None:
                picked.append({**item, "_text": text, "_at": at})
            if len(picked) >= bounds.messages:
                break
        if older or len(picked) >= bounds.messages or not data.get("has_more"):
            break
        token = data.get("page_token")
        if not token:
            break
        params["page_token"] = str(token)
    return await _named(services, integration, _bounded(picked, bounds.chars))


async def _rudder_notices(services: Services, items: list[dict[str, Any]]) -> set[str]:
    """The bots' messages among `items` that are notices a Rudder bot sent (its outbox)."""
    sent_by_bots = [
        str(i.get("message_id"))
        for i in items
        if _obj(i.get("sender")).get("id_type") == "app_id" and i.get("message_id")
    ]
    if not sent_by_bots:
        return set()
    async with services.sessions() as session:
        return set(
            await session.scalars(
                select(OutboxItem.feishu_message_id).where(
                    OutboxItem.feishu_message_id.in_(sent_by_bots),
                    OutboxItem.kind == reply_calls.NOTICE,
                )
            )
        )


def _bounded(picked: list[dict[str, Any]], chars: int) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    left = chars
    for item in picked:  # newest first
        text: str = item["_text"]
        if len(text) > left:
            if left >= TRUNCATED_MIN:
                kept.append({**item, "_text": text[: left - 1] + "…"})
            break
        kept.append(item)
        left -= len(text)
    return kept


async def _named(
    services: Services, integration: Integration, picked: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    open_ids = {
        str(i["sender"].get("id"))
        for i in picked
        if isinstance(i.get("sender"), dict) and i["sender"].get("id_type") == "open_id"
    }
    app_ids = {
        str(i["sender"].get("id"))
        for i in picked
        if isinstance(i.get("sender"), dict) and i["sender"].get("id_type") == "app_id"
    }
    async with services.sessions() as session:
        bound = await names.display_names(session, integration.id, open_ids)
        bots = dict(
            (
                await session.execute(
                    select(Integration.app_id, Integration.bot_name).where(
                        Integration.app_id.in_(app_ids)
                    )
                )
            ).all()
        )
    people: dict[str, str | None] = {}
    for open_id in open_ids:
        people[open_id] = await names.user_name(services, integration, open_id) or bound.get(
            open_id
        )
    out = []
    for item in reversed(picked):  # oldest first
        sender = _obj(item.get("sender"))
        sender_id = str(sender.get("id") or "")
        if sender.get("id_type") == "app_id":
            who, kind = bots.get(sender_id) or "a bot", "bot"
        else:
            who, kind = people.get(sender_id) or "a person in the group", "user"
        out.append(
            {
                "message_id": str(item.get("message_id") or ""),
                "sender": _one_line(who) or "a person in the group",
                "sender_type": kind,
                "sent_at": datetime.fromtimestamp(item["_at"] / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                "text": item["_text"],
            }
        )
    return out
