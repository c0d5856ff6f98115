"""Messages Rudder sends into Feishu chats: run replies, notices and the agent's own messages.

Everything goes through the outbox (`outbox.py`); `Outbound` owns the tasks that deliver it:
one `RunReply` per Feishu-sourced run (fed by the run executor's observer), and at start-up the
rows a previous process left pending. `send_notice` is the entry point the inbound pipeline uses
for short notices (binding prompt, /new and /stop answers, the non-text notice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from rudder.db.models import Conversation, Integration, Message, OutboxItem, Run, utcnow
from rudder.domain import activity
from rudder.domain import conversations as convs
from rudder.domain.runs import FINAL_STATUSES
from rudder.feishu import card_sweep, outbox
from rudder.feishu import reply_calls as calls
from rudder.feishu.bots import bot_for
from rudder.feishu.chunking import TEXT_BUDGET, split_text
from rudder.feishu.client import BotClient
from rudder.feishu.outbox import Item, RetryPolicy, idempotency_uuid
from rudder.feishu.reply_calls import Sequencers
from rudder.feishu.reply_stream import Ending, ReplyTarget, RunReply
from rudder.live import conversation_topic
from rudder.media import send as media_send
from rudder.run_views import RunUpdate, message_view
from rudder.services import Services

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


class Outbound:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.policy = RetryPolicy()
        self.seqs = Sequencers()
        self._replies: dict[str, RunReply] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inflight: dict[str, asyncio.Task[Item]] = {}
        self.no_target: set[str] = set()  # runs whose reply has nowhere to go
        self.shared_horizon_s = SHARED_HORIZON_S
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Observe runs and resume what a previous process left pending. Call before
        `runs.recover()` so that resubmitted runs are observed from their start."""
        if self._started:
            return
        self._started = True
        self.services.runs.add_observer(self._observe)
        self._spawn(self._resume(), "feishu-outbox-resume")

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop within `timeout`; rows still pending are resumed by the next start."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no reply or delivery is in progress (tests, orderly shutdown)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(list(self._tasks))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- runs ------------------------------------------------------------------------------------

    async def _observe(self, phase: str, update: RunUpdate) -> None:
        # Called inline by the executor for every delta: only hand the text over, never wait.
        if self._closed or update.source != "feishu":
            return
        reply = self._replies.get(update.run_id) or self._start_reply(update.run_id)
        reply.feed(phase, update.text, update.status, update.error)

    def expect(self, run_id: str, target: ReplyTarget) -> None:
        """Start the reply of a run that was just queued, before the executor starts it.

        Its rows, typing indicator and (still empty) card then go out while the run starts and
        the runtime warms up, instead of after; `target` saves reading it back. A run cancelled
        while queued ends its reply as "Stopped" (RunReply notices that by itself).
        """
        if not self.services.settings.is_sqlite:
            # Several processes execute runs: the reply is driven by the one that executes
            # this run (its executor's updates start it, `_observe`). Starting it here too
            # would give the run two drivers, two typing reactions and two card entities.
            return
        if self._started and not self._closed and run_id not in self._replies:
            self._start_reply(run_id, target)

    def _start_reply(
        self, run_id: str, target: ReplyTarget | None = None, *, resumed: bool = False
    ) -> RunReply:
        reply = self._replies[run_id] = RunReply(self, run_id, target, resumed=resumed)
        self._spawn(self._run_reply(reply), f"feishu-reply:{run_id}")
        return reply

    async def _run_reply(self, reply: RunReply) -> None:
        try:
            await reply.run()
        except Exception:
            log.exception("run %s: the Feishu reply crashed; a restart resumes it", reply.run_id)
        finally:
            self._replies.pop(reply.run_id, None)

    async def _resume(self) -> None:
        await self.sweep(older_than_s=0.0)

    async def sweep(self, older_than_s: float) -> int:
        """Re-drive what nobody in this process is delivering: replies whose ledger is pending
        (a crash, or a reply task that crashed), Feishu runs whose reply never started (the
        process died before its first rows were written), and other pending rows. At start-up
        (`older_than_s` 0) that is everything; while running, only rows older than that.
        Returns how many replies and rows it took up."""
        # On PostgreSQL other live processes drive the replies of the runs they execute: only
        # replies of runs that ended a while ago, whose driver evidently died, are taken up (a
        # run still going gets its reply from whoever executes it, after a takeover too).
        shared = not self.services.settings.is_sqlite
        horizon = older_than_s if not shared else max(older_than_s, self.shared_horizon_s)
        items = await outbox.stale_pending(self.services.sessions, older_than_s)
        ledgers = [i for i in items if i.kind == calls.RUN and i.run_id]
        taken = 0
        for ledger in ledgers:
            assert ledger.run_id is not None
            if ledger.run_id in self._replies or self._closed:
                continue
            ending = await self.ending_of(ledger.run_id)
            if ledger.run_id in self._replies:
                continue
            if shared and not await _ended_before(self.services.sessions, ledger.run_id, horizon):
                continue
            reply = self._start_reply(ledger.run_id, resumed=True)
            taken += 1
            if ending is not None:
                reply.feed("end", ending.text, ending.status, ending.error)
            # Not final yet: a queued run is resubmitted and observed into this reply; a run
            # left `running` by a crash is queued again or marked failed by `runs.recover()`,
            # which may commit after the read above: the reply looks at the run until then.
        for run_id in await _runs_without_reply(self.services.sessions, horizon, ended=shared):
            if run_id in self._replies or run_id in self.no_target or self._closed:
                continue
            ending = await self.ending_of(run_id)
            if run_id in self._replies:
                continue
            reply = self._start_reply(run_id)
            taken += 1
            if ending is not None:
                reply.feed("end", ending.text, ending.status, ending.error)
        in_replies = {i.run_id for i in ledgers} | set(self._replies)
        loose = [
            item
            for item in items
            if item.kind != calls.RUN
            and (item.run_id is None or item.run_id not in in_replies)
            and item.uuid not in self._inflight
            and (not shared or item.run_id is None)  # a run's rows: its reply's, above
        ]
        if loose and not self._closed:
            taken += len(loose)
            self._spawn(self._deliver_in_order(loose), "feishu-outbox-sweep")
        if not self._closed:
            taken += await card_sweep.settle(self, horizon)
        return taken

    def replies_in_progress(self) -> set[str]:
        return set(self._replies)

    def spawn_delivery(self, item: Item) -> None:
        if not self._closed:
            self._spawn(self.deliver(item), f"feishu-outbox:{item.id}")

    async def _deliver_in_order(self, items: list[Item]) -> None:
        for item in items:
            await self.deliver(item)  # one by one: keeps their order in the chat

    async def ending_of(self, run_id: str) -> Ending | None:
        """How the run ended, or None while it has not."""
        async with self.services.sessions() as session:
            run = await session.get(Run, run_id)
            if run is None or run.status not in FINAL_STATUSES:
                return None
            message = (
                await session.get(Message, run.reply_message_id) if run.reply_message_id else None
            )
            return Ending(run.status, message.body if message else "", run.error)

    # -- delivery --------------------------------------------------------------------------------

    async def bot(self, integration_id: str) -> BotClient:
        # The cached client needs no database read: `bots.forget` drops it whenever the
        # integration changes (connect, disconnect, a lease moving).
        cached = self.services.components.bot_clients.get(integration_id)
        if cached is not None:
            return cached
        return await bot_for(self.services, integration_id)

    async def send(
        self,
        *,
        integration_id: str,
        run_id: str | None,
        kind: str,
        target: str,
        payload: dict[str, Any],
        key: str,
        deliver: bool = True,
    ) -> Item:
        """Enqueue (idempotent by `key`) and, unless told not to, deliver with retries."""
        item = await outbox.enqueue(
            self.services.sessions,
            integration_id=integration_id,
            run_id=run_id,
            kind=kind,
            target=target,
            payload=payload,
            key=key,
        )
        if not deliver or item.status != "pending":
            return item
        return await self.deliver(item)

    async def deliver(self, item: Item) -> Item:
        # One delivery per row at a time, whoever asks (a reply, the resume at start-up).
        task = self._inflight.get(item.uuid)
        if task is None:
            task = self._spawn(self._deliver(item), f"feishu-outbox:{item.id}")
            self._inflight[item.uuid] = task
            key = item.uuid

            def forget(_: asyncio.Task[Any]) -> None:
                self._inflight.pop(key, None)

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _deliver(self, item: Item) -> Item:
        async def perform(it: Item, checkpoint: outbox.Checkpoint) -> None:
            bot = await self.bot(it.integration_id)
            media = self.services.runs.media
            if it.kind == media_send.ATTACHMENT and media is not None:
                await media_send.perform(self.services.sessions, media, bot, it, checkpoint)
                return
            await calls.perform(bot, self.seqs, it, checkpoint)

        done = await outbox.deliver(self.services.sessions, item, perform, self.policy)
        # Run replies report their own failures on the assistant message (RunReply._report).
        if done.status == "failed" and done.run_id is None:
            await self._record_failure(done)
        return done

    async def mark_sent(self, item: Item) -> None:
        item.status = "sent"
        await outbox.save(self.services.sessions, item)

    async def _record_failure(self, item: Item) -> None:
        async with self.services.sessions() as session, session.begin():
            integration = await session.get(Integration, item.integration_id)
            activity.record(
                session,
                org_id=integration.org_id if integration else None,
                actor="system",
                action="feishu.delivery_failed",
                entity_type="outbox",
                entity_id=item.id,
                details={"kind": item.kind, "target": item.target, "error": item.last_error},
            )


# Runs older than this are not looked at for a missing reply (they predate any crash worth
# answering after; a restart a day later must not answer a day-old message).
REPLY_HORIZON = timedelta(days=1)
# PostgreSQL: a reply whose run ended this long ago and is still unfinished lost its driver.
SHARED_HORIZON_S = 30.0


async def _runs_without_reply(
    sessions: outbox.Sessions, older_than_s: float, *, ended: bool = False
) -> list[str]:
    """Feishu runs with no reply ledger: the process died between queueing the run and
    writing its reply's first rows (their card never went out). `ended`: only runs that
    finished more than `older_than_s` ago (on PostgreSQL a run still going gets its reply
    from the process that executes it)."""
    now = utcnow()
    before = now - timedelta(seconds=older_than_s)
    ledger = select(OutboxItem.id).where(OutboxItem.run_id == Run.id, OutboxItem.kind == calls.RUN)
    query = select(Run.id).where(
        Run.source == "feishu",
        Run.created_at > now - REPLY_HORIZON,
        Run.created_at < before,
        ~ledger.exists(),
    )
    if ended:
        query = query.where(Run.status.in_(FINAL_STATUSES), Run.finished_at < before)
    async with sessions() as session:
        return list(await session.scalars(query.order_by(Run.created_at)))


async def _ended_before(sessions: outbox.Sessions, run_id: str, older_than_s: float) -> bool:
    """Whether the run ended more than `older_than_s` ago."""
    before = utcnow() - timedelta(seconds=older_than_s)
    async with sessions() as session:
        found = await session.scalar(
            select(Run.id).where(
                Run.id == run_id, Run.status.in_(FINAL_STATUSES), Run.finished_at < before
            )
        )
    return found is not None


def outbound_of(services: Services) -> Outbound:
    found = services.components.outbound
    if found is None:
        found = services.components.outbound = Outbound(services)
    return found


def install(services: Services) -> Outbound:
    outbound = outbound_of(services)
    outbound.start()
    return outbound


async def shutdown(services: Services) -> None:
    found = services.components.outbound
    if found is not None:
        await found.close()


# -- notices and the agent's own messages ----------------------------------------------------------


async def _send_text(
    services: Services,
    integration_id: str,
    chat_id: str,
    text: str,
    *,
    reply_to: str | None,
    kind: str,
    key: str,
) -> list[Item]:
    ob = outbound_of(services)
    items: list[Item] = []
    for part, content in enumerate(split_text(text, TEXT_BUDGET)):
        payload = {
            "chat_id": chat_id,
            "reply_to": reply_to,
            "msg_type": "text",
            "content": {"text": content},
        }
        item = await ob.send(
            integration_id=integration_id,
            run_id=None,
            kind=kind,
            target=reply_to or chat_id,
            payload=payload,
            key=idempotency_uuid(kind, integration_id, key, str(part)),
        )
        items.append(item)
        if item.status != "sent":
            break  # later parts would arrive out of order; the failure is on record
    return items


async def send_notice(
    services: Services,
    integration_id: str,
    chat_id: str,
    text: str,
    *,
    reply_to: str | None,
    key: str,
) -> None:
    """Post `text` in the chat (as a reply to `reply_to` when given); `key` makes it idempotent."""
    await _send_text(
        services, integration_id, chat_id, text, reply_to=reply_to, kind=calls.NOTICE, key=key
    )


async def send_private_notice(
    services: Services, integration_id: str, open_id: str, text: str, *, key: str
) -> bool:
    """Post `text` to one person, in their direct chat with the bot (Feishu's send by
    `receive_id_type=open_id`); True once it was delivered. `key` makes it idempotent."""
    ob = outbound_of(services)
    sent = True
    for part, content in enumerate(split_text(text, TEXT_BUDGET)):
        item = await ob.send(
            integration_id=integration_id,
            run_id=None,
            kind=calls.NOTICE,
            target=open_id,
            payload={
                "receive_id": open_id,
                "receive_id_type": "open_id",
                "reply_to": None,
                "msg_type": "text",
                "content": {"text": content},
            },
            key=idempotency_uuid(calls.NOTICE, integration_id, key, str(part)),
        )
        sent = item.status == "sent"
        if not sent:
            break
    return sent


def spawn_private_notice(
    services: Services, integration_id: str, open_id: str, text: str, *, key: str
) -> None:
    """`send_private_notice` without waiting for it (a page answers before Feishu does)."""
    ob = outbound_of(services)

    async def send() -> None:
        try:
            await send_private_notice(services, integration_id, open_id, text, key=key)
        except Exception:
            log.exception("private notice to %s could not be queued", open_id)

    if not ob._closed:
        ob._spawn(send(), f"feishu-private-notice:{integration_id}")


def spawn_notice(
    services: Services,
    integration_id: str,
    chat_id: str,
    text: str,
    *,
    reply_to: str | None,
    key: str,
) -> None:
    """`send_notice` without waiting for it (a card callback answers within 3 s)."""
    ob = outbound_of(services)

    async def send() -> None:
        try:
            await send_notice(services, integration_id, chat_id, text, reply_to=reply_to, key=key)
        except Exception:
            log.exception("notice in %s could not be queued", chat_id)

    if not ob._closed:
        ob._spawn(send(), f"feishu-notice:{integration_id}")


@dataclass(frozen=True, slots=True)
class PostedMessage:
    status: str  # sent | pending | failed
    outbox_ids: list[str]
    feishu_message_ids: list[str]
    conversation_id: str | None
    message_id: str | None
    error: str | None
    error_code: int | None


async def post_agent_message(
    services: Services, integration: Integration, chat_id: str, text: str, *, key: str
) -> PostedMessage:
    """The agent's own message into `chat_id`, recorded in the chat's conversation if it has one."""
    items = await _send_text(
        services, integration.id, chat_id, text, reply_to=None, kind=calls.MESSAGE, key=key
    )
    status = "sent" if all(i.status == "sent" for i in items) else items[-1].status
    ids = [i.feishu_message_id for i in items if i.feishu_message_id]
    unsent = next((i for i in items if i.status != "sent"), None)
    error, code = (unsent.last_error, unsent.last_code) if unsent else (None, None)
    conversation_id = message_id = None
    view = None
    async with services.sessions() as session, session.begin():
        conv = await session.scalar(
            select(Conversation)
            .where(
                Conversation.integration_id == integration.id,
                Conversation.agent_id == integration.agent_id,
                Conversation.external_chat_id == chat_id,
                Conversation.external_thread_id.is_(None),  # the chat itself, not a topic
            )
            .order_by(Conversation.bound.desc(), Conversation.created_at.desc())
            .limit(1)
        )
        already = (
            await session.scalar(
                select(Message.id).where(
                    Message.conversation_id == conv.id, Message.external_message_id == ids[0]
                )
            )
            if conv is not None and ids
            else None
        )
        if conv is not None and status != "pending" and already is None:
            message = await convs.append_message(
                session,
                conv,
                role="assistant",
                body=text,
                status="completed" if status == "sent" else "failed",
                author_agent_id=integration.agent_id,
                external_message_id=ids[0] if ids else None,
            )
            if status == "failed":
                message.error = error
            conversation_id, message_id, view = conv.id, message.id, message_view(message)
    if view is not None and conversation_id is not None:
        services.live.publish(conversation_topic(conversation_id), "message.created", view)
    return PostedMessage(
        status, [i.id for i in items], ids, conversation_id, message_id, error, code
    )
