"""The inbound pipeline: record first, ack, then route (ARCHITECTURE §5).

`receive` is what both transports call. It hands the event to the inbox writer, which commits it
(grouped with whatever else arrived meanwhile) before `receive` returns, so the ack Feishu gets
always means "durably recorded"; no agent work happens before the ack. Processing then runs per
chat, in order, with at most `PROCESS_PER_BOT` chats of one bot in flight at once. `/stop` skips
the chat's queue so it is never stuck behind the run it should stop. Events recorded but not
processed when the process died are processed on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import timedelta

from sqlalchemy import select

from rudder.db.models import InboundEvent as InboundRow
from rudder.db.models import Message, new_id, utcnow
from rudder.feishu.events import InboundEvent, membership_chat, parse_event
from rudder.feishu.inbox_writer import InboxWriter, Received
from rudder.services import Services

__all__ = ["CRASH_AFTER_RECORD_ENV", "InboundPipeline", "Received", "is_stop", "pipeline"]

log = logging.getLogger(__name__)

WORKER_IDLE_S = 30.0
# A bot with many busy chats must not starve the others of database and runtime capacity.
PROCESS_PER_BOT = 8
# Events just recorded are routed from memory instead of being read back; beyond this many
# waiting (a burst's backlog) routing reads them from the inbox, as recovery does.
IN_MEMORY_MAX = 1000
# Test hook, read once at start-up: kill the process (SIGKILL, no cleanup) right after an event
# is committed and before it is acked, to prove a re-push is then recognised as a duplicate.
CRASH_AFTER_RECORD_ENV = "RUDDER_TEST_CRASH_AFTER_RECORD"
# An event whose processing raised (the database refused a write, a bug) is tried again after
# these pauses, in its chat's order, before it is marked failed with the last reason. Routing
# is idempotent: a message already posted is not posted again.
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


def is_stop(event: InboundEvent) -> bool:
    return bool(
        event.message
        and event.message.text is not None
        and event.message.text.strip().lower().startswith("/stop")
    )


class InboundPipeline:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.writer = InboxWriter(
            services.sessions, services.engine.dialect.name, services.engine.url
        )
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._bots: dict[str, asyncio.Semaphore] = {}
        self._side: set[asyncio.Task[None]] = set()
        self._closed = False
        self._inflight = 0
        self._parsed: dict[str, tuple[str, InboundEvent]] = {}
        self._scheduled: set[str] = set()  # row ids queued or in processing here
        self.retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
        self._crash_after_record = os.environ.get(CRASH_AFTER_RECORD_ENV) == "1"

    async def receive(self, integration_id: str, event: InboundEvent) -> Received:
        """Record the event durably (raises if that fails, so the transport NACKs)."""
        msg = event.message
        row_id = new_id()
        now = utcnow()
        received = await self.writer.record(
            {
                "id": row_id,
                "created_at": now,
                "integration_id": integration_id,
                "app_id": event.app_id or "?",
                "event_id": event.event_id,
                "event_type": event.event_type,
                "message_id": msg.message_id if msg else None,
                "chat_id": msg.chat_id if msg else membership_chat(event),
                "chat_type": msg.chat_type if msg else None,
                "sender_open_id": msg.sender_open_id if msg else None,
                "payload": event.payload,
                "received_at": now,
                "outcome": "received",
                "reason": None,
            }
        )
        if self._crash_after_record:
            log.warning("%s=1: killing the process between record and ack", CRASH_AFTER_RECORD_ENV)
            os.kill(os.getpid(), signal.SIGKILL)
        if received.duplicate or received.refused:
            # At-least-once delivery: Feishu may push the same event again (reference §7.5).
            return received
        # One queue per chat, and per topic: topics of one group are conversations of their
        # own and run side by side.
        chat = f"{integration_id}:{msg.chat_id}" if msg else f"event:{row_id}"
        if msg and msg.thread_id:
            chat += f":{msg.thread_id}"
        if len(self._parsed) < IN_MEMORY_MAX:
            self._parsed[row_id] = (integration_id, event)
        self.schedule(row_id, chat, integration_id, urgent=is_stop(event))
        return received

    async def receive_raw(self, integration_id: str, payload: bytes) -> Received:
        return await self.receive(integration_id, parse_event(payload))

    # -- scheduling ----------------------------------------------------------------------------

    def schedule(
        self, row_id: str, chat_key: str, integration_id: str, *, urgent: bool = False
    ) -> None:
        if self._closed or row_id in self._scheduled:
            return
        self._scheduled.add(row_id)
        if urgent:
            task = asyncio.create_task(self._process(row_id), name=f"inbound-urgent:{row_id}")
            self._side.add(task)
            task.add_done_callback(self._side.discard)
            return
        queue = self._queues.setdefault(chat_key, asyncio.Queue())
        queue.put_nowait(row_id)
        worker = self._workers.get(chat_key)
        if worker is None or worker.done():
            bot = self._bots.setdefault(integration_id, asyncio.Semaphore(PROCESS_PER_BOT))
            self._workers[chat_key] = asyncio.create_task(
                self._worker(chat_key, queue, bot), name=f"inbound:{chat_key}"
            )

    async def _worker(
        self, chat_key: str, queue: asyncio.Queue[str], bot: asyncio.Semaphore
    ) -> None:
        try:
            while True:
                try:
                    row_id = await asyncio.wait_for(queue.get(), WORKER_IDLE_S)
                except TimeoutError:
                    if queue.empty():
                        return
                    continue
                async with bot:
                    await self._process(row_id)
        finally:
            if self._workers.get(chat_key) is asyncio.current_task():
                self._workers.pop(chat_key, None)
                if queue.empty():
                    self._queues.pop(chat_key, None)

    async def _process(self, row_id: str) -> None:
        from rudder.feishu.routing import route

        self._inflight += 1
        known = self._parsed.pop(row_id, None)
        try:
            for attempt, delay in enumerate((*self.retry_delays_s, None), start=1):
                try:
                    outcome, reason = await route(self.services, row_id, known)
                    break
                except Exception as exc:
                    outcome, reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                    if delay is None or self._closed:
                        log.exception("inbound event %s failed (attempt %d)", row_id, attempt)
                        break
                    log.warning(
                        "inbound event %s failed (attempt %d), again in %g s: %s",
                        row_id, attempt, delay, reason[:300],
                    )  # fmt: skip
                    await asyncio.sleep(delay)
            # If this write fails the row stays `received`, and the sweeper routes it again.
            await self.writer.set_outcome(row_id, outcome, reason)
        finally:
            self._inflight -= 1
            self._scheduled.discard(row_id)

    async def sweep(self, older_than_s: float) -> int:
        """Events recorded more than `older_than_s` ago and still `received` that nobody here
        is processing (their outcome could not be written, or their task died): route them."""
        before = utcnow() - timedelta(seconds=older_than_s)
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(InboundRow.id, InboundRow.integration_id, InboundRow.chat_id)
                    .where(InboundRow.outcome == "received", InboundRow.received_at < before)
                    .order_by(InboundRow.received_at)
                    .limit(1000)
                )
            ).all()
        taken = 0
        for row_id, integration_id, chat_id in rows:
            if row_id in self._scheduled:
                continue
            taken += 1
            chat = f"{integration_id}:{chat_id}" if chat_id else f"event:{row_id}"
            self.schedule(row_id, chat, integration_id)
        return taken

    async def recover(self) -> None:
        """Events recorded (and acked) but never finished: the process died before routing ended.

        A message whose user message was already posted (the process died between posting and
        writing the outcome) is marked processed instead of being routed a second time.
        """
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        InboundRow.id,
                        InboundRow.integration_id,
                        InboundRow.chat_id,
                        InboundRow.message_id,
                    )
                    .where(InboundRow.outcome == "received")
                    .order_by(InboundRow.received_at)
                )
            ).all()
            message_ids = [r.message_id for r in rows if r.message_id]
            posted = set(
                await session.scalars(
                    select(Message.external_message_id).where(
                        Message.external_message_id.in_(message_ids)
                    )
                )
                if message_ids
                else []
            )
        for row_id, integration_id, chat_id, message_id in rows:
            if message_id in posted:
                await self.writer.set_outcome(
                    row_id, "processed", "message was posted before a restart"
                )
                continue
            chat = f"{integration_id}:{chat_id}" if chat_id else f"event:{row_id}"
            self.schedule(row_id, chat, integration_id)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._inflight or any(not q.empty() for q in self._queues.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("inbound events still processing")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._closed = True
        self._parsed.clear()
        tasks = [*self._workers.values(), *self._side]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.writer.close()


def pipeline(services: Services) -> InboundPipeline:
    found = services.components.inbound
    if found is None:
        found = services.components.inbound = InboundPipeline(services)
    return found
