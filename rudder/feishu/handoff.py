"""Hand-offs in a group: an agent's reply that @-mentions another Rudder agent's bot in the same
chat gives that agent the turn (docs/agent-teams.md).

Rudder owns every bot, so the hand-off happens here, once the first agent's reply has been
delivered (`RunReply`), never by Feishu delivering one bot's message to another: bots stay
ignored in routing. The second agent runs in its own conversation for the chat (or topic), its
run linked to the one that handed over, and answers from its own bot.

Loops end: at most `RUDDER_HANDOFF_MAX_HOPS` hand-offs follow one person's message (then a
short note in the chat), an agent never hands to itself, a bot whose chat policy keeps it out
of the group takes no hand-off there, and /stop or a card's Stop ends the whole chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import chat, texts
from rudder.db.models import Agent, Conversation, Integration, Message, Run, User, utcnow
from rudder.db.models import InboundEvent as InboundRow
from rudder.domain import budgets
from rudder.domain.runs import ACTIVE_STATUSES
from rudder.feishu import chat_convs, chat_policy
from rudder.feishu import reply_calls as calls
from rudder.feishu.errors import BOT_NOT_IN_CHAT, FeishuError
from rudder.feishu.handoff_mentions import Bot, mentioned
from rudder.feishu.outbox import idempotency_uuid
from rudder.feishu.regions import Region
from rudder.services import Services

if TYPE_CHECKING:
    from rudder.feishu.outbound import Outbound
    from rudder.feishu.reply_stream import Ending, ReplyTarget

log = logging.getLogger(__name__)

# A /stop also stops a chain whose newest run ended this recently: its next hop may be starting.
CHAIN_SETTLE = timedelta(seconds=60)
BOT_REMOVED = "im.chat.member.bot.deleted_v1"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a finished reply's mentions mean: the bots in the chat it names (shown as real
    mentions), who takes the turn, or who would have, past the hop limit."""

    bots: list[Bot]
    to: Bot | None
    limited: Bot | None
    hop: int
    limit: int


async def plan(services: Services, run_id: str, ending: Ending) -> Plan | None:
    """None when the reply hands nothing over: not a group, not succeeded, no mention."""
    if ending.status != "succeeded" or ("@" not in ending.text and "<at" not in ending.text):
        return None
    async with services.sessions() as session:
        run = await session.get(Run, run_id)
        conv = await session.get(Conversation, run.conversation_id) if run else None
        if (
            run is None
            or conv is None
            or conv.integration_id is None
            or not conv.external_chat_id
            or conv.external_chat_type == "p2p"
        ):
            return None
        chat_id, agent_id, hop = conv.external_chat_id, run.agent_id, run.handoff_hop + 1
        rows = (
            await session.execute(
                select(Integration, Agent)
                .join(Agent, Agent.id == Integration.agent_id)
                .where(
                    Integration.org_id == conv.org_id,
                    Integration.status == "connected",
                    Integration.bot_open_id.is_not(None),
                )
            )
        ).all()
    bots = [
        Bot(i.id, a.id, a.name, i.bot_name, i.bot_open_id or "")
        for i, a in rows
        if i.bot_open_id and i.region == conv.region
    ]
    named = mentioned(ending.text, bots)
    if not named:
        return None
    in_chat = [
        b for b in named if b.agent_id == agent_id or await in_the_chat(services, b, chat_id)
    ]
    to = None
    for bot in in_chat:
        if bot.agent_id != agent_id and await _answers_in(services, bot, chat_id):
            to = bot
            break
    limit = services.settings.handoff_max_hops
    if limit == 0:  # hand-offs are off: the mentions are only mentions, and no note is sent
        return Plan(in_chat, None, None, hop, limit)
    if to is not None and hop > limit:
        return Plan(in_chat, None, to, hop, limit)
    return Plan(in_chat, to, None, hop, limit)


async def in_the_chat(services: Services, bot: Bot, chat_id: str) -> bool:
    """Whether `bot` is a member of the chat: Feishu says so (im.v1.chat.get as that bot);
    when Feishu can't tell (a missing scope, an outage), what Rudder last saw of it there."""
    from rudder.feishu.outbound import outbound_of

    try:
        client = await outbound_of(services).bot(bot.integration_id)
        await client.call("GET", f"/open-apis/im/v1/chats/{chat_id}")
        return True
    except FeishuError as exc:
        if exc.code == BOT_NOT_IN_CHAT:
            return False
        log.info(
            "bot %s: chat %s unreadable (%s); using what Rudder saw", bot.open_id, chat_id, exc
        )
    except Exception:
        log.exception("bot %s: could not check chat %s", bot.open_id, chat_id)
    async with services.sessions() as session:
        last = await session.scalar(
            select(InboundRow.event_type)
            .where(InboundRow.integration_id == bot.integration_id, InboundRow.chat_id == chat_id)
            .order_by(InboundRow.received_at.desc())
            .limit(1)
        )
    return last is not None and last != BOT_REMOVED


async def _answers_in(services: Services, bot: Bot, chat_id: str) -> bool:
    async with services.sessions() as session:
        policy = await chat_policy.effective(session, bot.integration_id, chat_id)
    return policy.answers


async def hand_over(
    ob: Outbound, run_id: str, plan_: Plan, target: ReplyTarget, handing_message_id: str | None
) -> str | None:
    """Carry out `plan_` once the handing reply is in the chat; the new run's id, if any.
    Idempotent: a reply driven again after a restart hands over at most once."""
    if plan_.limited is not None:
        await _limit_note(ob, run_id, plan_, target, handing_message_id)
        return None
    if plan_.to is None:
        return None
    from rudder.feishu.reply_stream import ReplyTarget

    services = ob.services
    async with services.sessions() as session:
        root_id = await session.scalar(
            select(func.coalesce(Run.handoff_root_id, Run.id)).where(Run.id == run_id)
        )
        # The chain's first run is locked while deciding: a /stop marks it under the same lock.
        root = await session.get(Run, root_id, with_for_update=True) if root_id else None
        handing = await session.get(Run, run_id)
        if root is None or handing is None:
            return None
        if root.chain_stopped_at is not None or handing.cancel_requested_at is not None:
            return None
        if await session.scalar(select(Run.id).where(Run.handed_from_run_id == run_id).limit(1)):
            return None  # handed over already (before a restart)
        integration = await session.get(Integration, plan_.to.integration_id)
        conv = await session.get(Conversation, handing.conversation_id)
        if integration is None or integration.status != "connected" or conv is None:
            return None
        trigger = (
            await session.get(Message, handing.trigger_message_id)
            if handing.trigger_message_id
            else None
        )
        requester = (trigger.author_user_id if trigger else None) or conv.created_by_user_id
        if requester is None:
            return None  # the new conversation needs a member to belong to
        person = await session.get(User, requester)
        reply = (
            await session.get(Message, handing.reply_message_id)
            if handing.reply_message_id
            else None
        )
        handing_agent = await session.get(Agent, handing.agent_id)
        theirs = await chat_convs.chat_conversation(session, integration, conv, requester)
        body = texts.HANDOFF_CONTEXT.format(
            hop=plan_.hop,
            limit=plan_.limit,
            agent=handing_agent.name if handing_agent else plan_.to.label,
            person=person.name if person else texts.HANDOFF_PERSON_UNKNOWN,
            text=reply.body if reply else "",
        )
        _, run = await chat.post_user_message(
            services,
            session,
            theirs,
            body,
            author_user_id=requester,
            source="feishu",
            external_message_id=handing_message_id,
            handed_from=handing,
        )
        new_target = ReplyTarget(
            integration_id=integration.id,
            org_id=integration.org_id,
            region=Region(integration.region),
            style=integration.reply_style or "streaming_card",
            chat_id=target.chat_id,
            reply_to=handing_message_id,
            reply_message_id=None,
            conversation_id=theirs.id,
            in_thread=theirs.external_thread_id is not None,
        )
        run_id_new, held = run.id, run.status == budgets.HELD
    async with services.sessions() as session:
        # SQLite takes its write lock at the first write, not at the read above: a /stop that
        # committed in between has already looked for hops, so this one is stopped here.
        root = await session.get(Run, root.id)
        new = await session.get(Run, run_id_new)
        if root is not None and new is not None and root.chain_stopped_at is not None:
            # Its reply still starts below and says "Stopped": a Feishu run always gets one.
            await chat.cancel_runs(services, session, [new])
    log.info("run %s handed the turn to %s: run %s", run_id, plan_.to.agent_name, run_id_new)
    if not held:  # a budget-held run is answered when its agent resumes (the sweep finds it)
        ob.expect(run_id_new, new_target)
    return run_id_new


async def _limit_note(
    ob: Outbound, run_id: str, plan_: Plan, target: ReplyTarget, handing_message_id: str | None
) -> None:
    assert plan_.limited is not None
    text = texts.HANDOFF_LIMIT.format(limit=plan_.limit, agent=plan_.limited.label)
    reply_to = handing_message_id or target.reply_to
    payload: dict[str, object] = {
        "chat_id": target.chat_id,
        "reply_to": reply_to,
        "msg_type": "text",
        "content": {"text": text},
    }
    if target.in_thread:
        payload["in_thread"] = True
    await ob.send(
        integration_id=target.integration_id,
        run_id=None,
        kind=calls.NOTICE,
        target=reply_to or target.chat_id,
        payload=payload,
        key=idempotency_uuid(calls.NOTICE, target.integration_id, "handoff-limit", run_id),
    )


# -- stopping a chain --------------------------------------------------------------------------------


async def stop_chain_of(services: Services, session: AsyncSession, run: Run) -> list[str]:
    """A Stop pressed on one run's card: the rest of its chain stops too."""
    return await _stop_roots(services, session, {run.handoff_root_id or run.id})


async def stop_chains_in(
    services: Services, session: AsyncSession, org_id: str, chat_id: str, topic: str | None
) -> list[str]:
    """/stop in a chat (or topic): every chain there that is going on, or whose newest run
    ended so recently that its next hop may be starting, stops. Returns the runs stopped."""
    convs = select(Conversation.id).where(
        Conversation.org_id == org_id,
        Conversation.external_chat_id == chat_id,
        Conversation.external_thread_id.is_(None)
        if topic is None
        else Conversation.external_thread_id == topic,
    )
    rows = await session.execute(
        select(Run.id, Run.handoff_root_id).where(
            Run.conversation_id.in_(convs),
            or_(Run.status.in_(ACTIVE_STATUSES), Run.finished_at > utcnow() - CHAIN_SETTLE),
        )
    )
    return await _stop_roots(services, session, {root or rid for rid, root in rows.all()})


async def _stop_roots(services: Services, session: AsyncSession, roots: set[str]) -> list[str]:
    if not roots:
        return []
    for root in await session.scalars(select(Run).where(Run.id.in_(roots)).with_for_update()):
        root.chain_stopped_at = root.chain_stopped_at or utcnow()
    hops = list(
        await session.scalars(
            select(Run).where(Run.handoff_root_id.in_(roots), Run.status.in_(ACTIVE_STATUSES))
        )
    )
    return await chat.cancel_runs(services, session, hops)  # commits the marks too
