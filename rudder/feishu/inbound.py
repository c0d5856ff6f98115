"""The inbound pipeline: record first, ack, then route (ARCHITECTURE §5).

`receive` is what both transports call. It writes the event to `inbound_events` and commits
before returning, so the ack Feishu gets always means "durably recorded"; no agent work happens
before the ack. Processing then runs per chat, in order. `/stop` skips the chat's queue so it is
never stuck behind the run it should stop. Events recorded but not processed when the process
died are processed on the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from rudder.db.models import InboundEvent as InboundRow
from rudder.db.models import Integration, new_id, utcnow
from rudder.feishu.events import InboundEvent, parse_event
from rudder.services import Services

log = logging.getLogger(__name__)

WORKER_IDLE_S = 30.0


@dataclass(frozen=True, slots=True)
class Received:
    row_id: str | None
    duplicate: bool


def is_stop(event: InboundEvent) -> bool:
    return bool(
        event.message
        and event.message.text is not None
        and event.message.text.strip().lower().startswith("/stop")
    )


class InboundPipeline:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._side: set[asyncio.Task[None]] = set()
        self._closed = False
        self._inflight = 0

    async def receive(self, integration_id: str, event: InboundEvent) -> Received:
        """Record the event durably (raises if that fails, so the transport NACKs)."""
        msg = event.message
        row = InboundRow(
            id=new_id(),
            integration_id=integration_id,
            app_id=event.app_id or "?",
            event_id=event.event_id,
            event_type=event.event_type,
            message_id=msg.message_id if msg else None,
            chat_id=msg.chat_id if msg else None,
            chat_type=msg.chat_type if msg else None,
            sender_open_id=msg.sender_open_id if msg else None,
            payload=event.payload,
            received_at=utcnow(),
        )
        try:
            async with self.services.sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            # At-least-once delivery: Feishu may push the same event again (reference §7.5).
            await self._record_duplicate(integration_id, event)
            return Received(None, True)
        async with self.services.sessions() as session, session.begin():
            integration = await session.get(Integration, integration_id)
            if integration is not None:
                integration.last_event_at = row.received_at
        self.schedule(row.id, msg.chat_id if msg else f"event:{row.id}", urgent=is_stop(event))
        return Received(row.id, False)

    async def receive_raw(self, integration_id: str, payload: bytes) -> Received:
        return await self.receive(integration_id, parse_event(payload))

    async def _record_duplicate(self, integration_id: str, event: InboundEvent) -> None:
        async with self.services.sessions() as session, session.begin():
            first = await session.scalar(
                select(InboundRow).where(
                    InboundRow.app_id == (event.app_id or "?"),
                    InboundRow.event_id == event.event_id,
                )
            )
            # Keep a trace of the re-push under a derived id; the unique key stays on the original.
            suffix = hashlib.sha256(f"{time.time_ns()}".encode()).hexdigest()[:8]
            session.add(
                InboundRow(
                    integration_id=integration_id,
                    app_id=event.app_id or "?",
                    event_id=f"{event.event_id}#dup-{suffix}",
                    event_type=event.event_type,
                    message_id=event.message.message_id if event.message else None,
                    chat_id=event.message.chat_id if event.message else None,
                    chat_type=event.message.chat_type if event.message else None,
                    sender_open_id=event.message.sender_open_id if event.message else None,
                    payload={},
                    received_at=utcnow(),
                    outcome="duplicate",
                    reason=f"already received at {first.received_at.isoformat()}"
                    if first
                    else "already received",
                )
            )

    # -- scheduling ----------------------------------------------------------------------------

    def schedule(self, row_id: str, chat_key: str, *, urgent: bool = False) -> None:
        if self._closed:
            return
        if urgent:
            task = asyncio.create_task(self._process(row_id), name=f"inbound-urgent:{row_id}")
            self._side.add(task)
            task.add_done_callback(self._side.discard)
            return
        queue = self._queues.setdefault(chat_key, asyncio.Queue())
        queue.put_nowait(row_id)
        worker = self._workers.get(chat_key)
        if worker is None or worker.done():
            self._workers[chat_key] = asyncio.create_task(
                self._worker(chat_key, queue), name=f"inbound:{chat_key}"
            )

    async def _worker(self, chat_key: str, queue: asyncio.Queue[str]) -> None:
        try:
            while True:
                try:
                    row_id = await asyncio.wait_for(queue.get(), WORKER_IDLE_S)
                except TimeoutError:
                    if queue.empty():
                        return
                    continue
                await self._process(row_id)
        finally:
            if self._workers.get(chat_key) is asyncio.current_task():
                self._workers.pop(chat_key, None)
                if queue.empty():
                    self._queues.pop(chat_key, None)

    async def _process(self, row_id: str) -> None:
        from rudder.feishu.routing import route

        self._inflight += 1
        try:
            outcome, reason = await route(self.services, row_id)
        except Exception as exc:
            log.exception("inbound event %s failed", row_id)
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
        async with self.services.sessions() as session, session.begin():
            row = await session.get(InboundRow, row_id)
            if row is not None:
                row.outcome, row.reason = outcome, reason
        self._inflight -= 1

    async def recover(self) -> None:
        """Events recorded (and acked) but never processed: a crash between ack and routing."""
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(InboundRow.id, InboundRow.chat_id)
                    .where(InboundRow.outcome == "received")
                    .order_by(InboundRow.received_at)
                )
            ).all()
        for row_id, chat_id in rows:
            self.schedule(row_id, chat_id or f"event:{row_id}")

    async def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._inflight or any(not q.empty() for q in self._queues.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("inbound events still processing")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._workers.values(), *self._side]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


def pipeline(services: Services) -> InboundPipeline:
    found = services.extras.get("feishu_inbound")
    if found is None:
        found = services.extras["feishu_inbound"] = InboundPipeline(services)
    assert isinstance(found, InboundPipeline)
    return found
