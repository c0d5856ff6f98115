"""A press on a reply card's button (`card.action.trigger`), answered within Feishu's deadline.

Both transports hand the callback here and send back what `answer` returns: over the long
connection it rides in the ack's `data`, over the webhook it is the HTTP 200 body (reference §7.5,
§8.6). Feishu waits at most 3 s and never re-pushes a callback it got no answer to, so the work
runs shielded: past `ANSWER_WITHIN_S` the person gets a "busy" toast while the stop still
happens.

Rules, in order: the press is recorded in the inbox first (a redelivered press — same event_id
— acts once); the button's value must verify (card_controls) and name a run of this bot in the
chat the press came from; the presser must be linked to an active member; only the member who
asked, or an owner or admin of the organization, may press. Stop acts like `/stop`, ahead of
any queue; New conversation acts like `/new`, once per card.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from rudder import chat, texts
from rudder.db.models import (
    Conversation,
    Integration,
    Membership,
    Message,
    Run,
    User,
    new_id,
    utcnow,
)
from rudder.domain.runs import FINAL_STATUSES
from rudder.feishu import bindings, chat_convs, handoff
from rudder.feishu import card_controls as controls
from rudder.feishu.events import InboundEvent
from rudder.feishu.inbound import pipeline
from rudder.feishu.outbound import spawn_notice
from rudder.services import Services

log = logging.getLogger(__name__)

EVENT_TYPE = "card.action.trigger"
# Feishu's deadline is 3 s for the whole exchange; leave room for the way back.
ANSWER_WITHIN_S = 2.5
ADMIN_ROLES = ("owner", "admin")
Answer = tuple[str, str, dict[str, Any]]  # outcome, reason, the response body


@dataclass(frozen=True, slots=True)
class Press:
    open_id: str | None
    value: object
    message_id: str | None
    chat_id: str | None


def is_callback(event: InboundEvent) -> bool:
    return event.event_type == EVENT_TYPE


def toast(kind: str, content: str) -> dict[str, Any]:
    return {"toast": {"type": kind, "content": content}}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def press_of(event: InboundEvent) -> Press:
    body = _dict(event.payload.get("event"))
    operator, action = _dict(body.get("operator")), _dict(body.get("action"))
    context = _dict(body.get("context"))
    return Press(
        open_id=_str(operator.get("open_id")),
        value=action.get("value"),
        message_id=_str(context.get("open_message_id")),
        chat_id=_str(context.get("open_chat_id")),
    )


async def answer(services: Services, integration_id: str, event: InboundEvent) -> dict[str, Any]:
    """The callback's response body: a toast for the presser (the card updates itself)."""
    work = asyncio.ensure_future(_answer(services, integration_id, event))
    try:
        return await asyncio.wait_for(asyncio.shield(work), ANSWER_WITHIN_S)
    except TimeoutError:
        log.warning("card press %s: not answered within %g s", event.event_id, ANSWER_WITHIN_S)
        return toast("warning", texts.CARD_TOAST_BUSY)


async def _answer(services: Services, integration_id: str, event: InboundEvent) -> dict[str, Any]:
    press = press_of(event)
    inbox = pipeline(services)
    now = utcnow()
    received = await inbox.writer.record(
        {
            "id": new_id(),
            "created_at": now,
            "integration_id": integration_id,
            "app_id": event.app_id or "?",
            "event_id": event.event_id,
            "event_type": event.event_type,
            # Not the card's id: the inbox takes a message id as "already received", and every
            # press on one card carries the same. The event_id is what tells presses apart.
            "message_id": None,
            "chat_id": press.chat_id,
            "chat_type": None,
            "sender_open_id": press.open_id,
            "payload": event.payload,
            "received_at": now,
            "outcome": "received",
            "reason": None,
        }
    )
    if received.duplicate:
        return toast("info", texts.CARD_TOAST_REPEATED)  # a redelivery: it already acted
    if received.refused or received.row_id is None:
        return toast("error", texts.CARD_TOAST_UNKNOWN)
    try:
        outcome, reason, response = await _act(services, integration_id, event, press)
    except Exception:
        log.exception("card press %s failed", event.event_id)
        await inbox.writer.set_outcome(received.row_id, "failed", "the press could not be handled")
        return toast("error", texts.CARD_TOAST_BUSY)
    await inbox.writer.set_outcome(received.row_id, outcome, reason)
    return response


async def _act(
    services: Services, integration_id: str, event: InboundEvent, press: Press
) -> Answer:
    unknown = toast("error", texts.CARD_TOAST_UNKNOWN)
    async with services.sessions() as session:
        integration = await session.get(Integration, integration_id)
        if integration is None or integration.status != "connected":
            return "refused", "the bot is not connected", unknown
        if event.app_id != integration.app_id:
            return "refused", f"press belongs to app {event.app_id or '?'}", unknown
        keys = (services.box.key, *services.box.old_keys)
        parsed = controls.read_value(press.value, keys, integration.id)
        if parsed is None:
            return "refused", "button value is not a signed button of this bot", unknown
        action, run_id = parsed
        run = await session.get(Run, run_id)
        conv = await session.get(Conversation, run.conversation_id) if run else None
        if (
            run is None
            or conv is None
            or conv.integration_id != integration.id
            or (press.chat_id is not None and conv.external_chat_id != press.chat_id)
        ):
            return "refused", f"{action}: the run is not this bot's in this chat", unknown
        presser = await bindings.bound_user(session, integration, press.open_id)
        if presser is None:
            product = bindings.product(integration.region)
            note = toast("warning", texts.CARD_TOAST_NOT_LINKED.format(product=product))
            return "refused", f"{action}: the presser is not linked to a member", note
        trigger = (
            await session.get(Message, run.trigger_message_id) if run.trigger_message_id else None
        )
        requester_id = trigger.author_user_id if trigger else None
        if presser.id != requester_id and not await _is_admin(session, presser.id, run.org_id):
            requester = await session.get(User, requester_id) if requester_id else None
            name = requester.name if requester else texts.CARD_REQUESTER_UNKNOWN
            only = (
                texts.CARD_TOAST_ONLY_STOP if action == controls.STOP else texts.CARD_TOAST_ONLY_NEW
            )
            return (
                "refused",
                f"{action}: pressed by a member who did not ask",
                toast("warning", only.format(name=name)),
            )
        if action == controls.STOP:
            if run.status in FINAL_STATUSES:
                return (
                    "command",
                    "stop pressed: the reply had already finished",
                    toast("info", texts.CARD_TOAST_FINISHED),
                )
            if run.cancel_requested_at is not None:
                return (
                    "command",
                    "stop pressed: already stopping",
                    toast("info", texts.CARD_TOAST_ALREADY_STOPPING),
                )
            stopped = await chat.cancel_runs(services, session, [run])
            # A hand-off chain stops as a whole (rudder/feishu/handoff.py).
            stopped += await handoff.stop_chain_of(services, session, run)
            if not stopped:
                return (
                    "command",
                    "stop pressed: nothing to stop",
                    toast("info", texts.CARD_TOAST_FINISHED),
                )
            return (
                "command",
                "stop pressed: stopped the reply",
                toast("success", texts.CARD_TOAST_STOPPING),
            )
        chat_id, chat_type = conv.external_chat_id, conv.external_chat_type or "p2p"
        name = conv.external_chat_name or texts.CHAT_TITLE_GROUP
        conv_id, presser_id = conv.id, presser.id
        topic = conv.external_thread_id
        topic_title = conv.title.rsplit(" · ", 1)[0] if topic else None
    if chat_id is None:
        return "refused", "new: the conversation has no chat", unknown
    fresh = await chat_convs.start_fresh(
        services,
        integration,
        chat_id,
        chat_type,
        name,
        presser_id,
        topic=topic,
        topic_title=topic_title,
        replacing=conv_id,
    )
    if fresh is None:
        return (
            "command",
            "new pressed: a newer conversation already exists",
            toast("info", texts.CARD_TOAST_NEW_ALREADY),
        )
    # Everyone in the chat learns of it, as after /new; the toast is for the presser alone.
    spawn_notice(
        services,
        integration.id,
        chat_id,
        texts.FEISHU_NEW_STARTED,
        reply_to=press.message_id,
        key="c-" + hashlib.sha256(f"new:{event.event_id}".encode()).hexdigest()[:40],
    )
    return (
        "command",
        "new pressed: started a fresh conversation",
        toast("success", texts.CARD_TOAST_NEW_STARTED),
    )


async def _is_admin(session: Any, user_id: str, org_id: str) -> bool:
    role = await session.scalar(
        select(Membership.role).where(
            Membership.org_id == org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    return role in ADMIN_ROLES
