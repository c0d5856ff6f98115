"""The outbox: every change Rudder makes in Feishu is written down first, then attempted.

A row carries a deterministic `uuid` (unique in the table, and sent to Feishu, which runs a
request with the same `uuid` at most once within an hour — reference §6.1). Enqueueing the same
(run, part) twice returns the same row, and re-sending a row after a crash posts nothing new.

Row lifecycle (transitions only in `deliver`):
  pending ─┬─> sent     the call succeeded; `feishu_message_id` holds what it created
           └─> failed   a non-retryable answer, or the last attempt ran out
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import OutboxItem, utcnow
from rudder.feishu.errors import FeishuError

log = logging.getLogger(__name__)

_NAMESPACE = uuidlib.UUID("5b0f9a52-3c1e-4f43-9d0e-6f1f2a7c8e01")


def idempotency_uuid(*parts: str) -> str:
    """A stable ≤ 50-character key for one logical Feishu change (Feishu's `uuid` limit)."""
    return str(uuidlib.uuid5(_NAMESPACE, "\x1f".join(parts)))


@dataclass
class Item:
    """A detached copy of an `outbox` row, safe to pass between tasks."""

    id: str
    integration_id: str
    run_id: str | None
    kind: str
    target: str
    payload: dict[str, Any]
    uuid: str
    status: str = "pending"
    attempts: int = 0
    feishu_message_id: str | None = None
    last_error: str | None = None
    last_code: int | None = field(default=None, compare=False)

    @classmethod
    def of(cls, row: OutboxItem) -> Item:
        return cls(
            id=row.id,
            integration_id=row.integration_id,
            run_id=row.run_id,
            kind=row.kind,
            target=row.target,
            payload=dict(row.payload or {}),
            uuid=row.idempotency_uuid,
            status=row.status,
            attempts=row.attempts,
            feishu_message_id=row.feishu_message_id,
            last_error=row.last_error,
        )


@dataclass
class RetryPolicy:
    """Backoff for timeouts, 5xx, 230020 and 99991400; `x-ogw-ratelimit-reset` wins when given."""

    max_attempts: int = 6
    base_s: float = 0.25
    max_s: float = 8.0
    max_retry_after_s: float = 60.0

    def delay(self, attempts: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None and retry_after_s > 0:
            return min(retry_after_s, self.max_retry_after_s)
        backoff = min(self.max_s, self.base_s * 2.0 ** (attempts - 1))
        return backoff * (0.75 + random.random() / 2)  # jitter: retries of one burst spread out


Sessions = async_sessionmaker[AsyncSession]
Checkpoint = Callable[[], Awaitable[None]]
Perform = Callable[[Item, Checkpoint], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Spec:
    """What `enqueue_many` writes for one row."""

    integration_id: str
    run_id: str | None
    kind: str
    target: str
    payload: dict[str, Any]
    key: str


async def enqueue(
    sessions: Sessions,
    *,
    integration_id: str,
    run_id: str | None,
    kind: str,
    target: str,
    payload: dict[str, Any],
    key: str,
) -> Item:
    """The row for `key`, created pending if it does not exist yet (idempotent)."""
    spec = Spec(integration_id, run_id, kind, target, payload, key)
    return (await enqueue_many(sessions, [spec]))[0]


async def enqueue_many(sessions: Sessions, specs: list[Spec]) -> list[Item]:
    """The rows for `specs`, in order; the missing ones are created pending in one transaction.

    One read and at most one write transaction for several rows: a reply's first rows (its
    ledger, typing indicator and card) are written together, before anything is visible.
    """
    found = await _get_many(sessions, [s.key for s in specs])
    missing = [s for s in specs if s.key not in found]
    if missing:
        try:
            async with sessions() as session, session.begin():
                rows = [
                    OutboxItem(
                        integration_id=s.integration_id,
                        run_id=s.run_id,
                        kind=s.kind,
                        target=s.target,
                        payload=s.payload,
                        idempotency_uuid=s.key,
                        status="pending",
                        attempts=0,
                    )
                    for s in missing
                ]
                session.add_all(rows)
                await session.flush()
                found.update((row.idempotency_uuid, Item.of(row)) for row in rows)
        except IntegrityError:
            # Another task enqueued one of these keys between our read and our insert.
            for s in missing:
                found[s.key] = await _enqueue_one(sessions, s)
    return [found[s.key] for s in specs]


async def _enqueue_one(sessions: Sessions, s: Spec) -> Item:
    again = await get(sessions, s.key)
    if again is not None:
        return again
    try:
        async with sessions() as session, session.begin():
            row = OutboxItem(
                integration_id=s.integration_id,
                run_id=s.run_id,
                kind=s.kind,
                target=s.target,
                payload=s.payload,
                idempotency_uuid=s.key,
                status="pending",
                attempts=0,
            )
            session.add(row)
            await session.flush()
            return Item.of(row)
    except IntegrityError:
        again = await get(sessions, s.key)
        assert again is not None
        return again


async def _get_many(sessions: Sessions, keys: list[str]) -> dict[str, Item]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxItem).where(OutboxItem.idempotency_uuid.in_(keys))
        )
        return {row.idempotency_uuid: Item.of(row) for row in rows}


async def get(sessions: Sessions, key: str) -> Item | None:
    async with sessions() as session:
        row = await session.scalar(select(OutboxItem).where(OutboxItem.idempotency_uuid == key))
        return Item.of(row) if row is not None else None


async def for_run(sessions: Sessions, run_id: str) -> list[Item]:
    async with sessions() as session:
        rows = await session.scalars(select(OutboxItem).where(OutboxItem.run_id == run_id))
        return [Item.of(r) for r in rows]


async def pending(sessions: Sessions) -> list[Item]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxItem).where(OutboxItem.status == "pending").order_by(OutboxItem.created_at)
        )
        return [Item.of(r) for r in rows]


async def stale_pending(sessions: Sessions, older_than_s: float) -> list[Item]:
    """Rows still pending that were created more than `older_than_s` ago (for the sweeper)."""
    before = utcnow() - timedelta(seconds=older_than_s)
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.status == "pending", OutboxItem.created_at < before)
            .order_by(OutboxItem.created_at)
        )
        return [Item.of(r) for r in rows]


async def save(sessions: Sessions, item: Item, next_attempt_s: float | None = None) -> None:
    # One UPDATE, no read-back and no ORM flush: this runs after every Feishu call.
    async with sessions() as session, session.begin():
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id)
            .values(
                status=item.status,
                attempts=item.attempts,
                payload=dict(item.payload),
                feishu_message_id=item.feishu_message_id,
                last_error=item.last_error,
                next_attempt_at=(
                    utcnow() + timedelta(seconds=next_attempt_s)
                    if next_attempt_s is not None
                    else None
                ),
            )
            .execution_options(synchronize_session=False)
        )


async def deliver(sessions: Sessions, item: Item, perform: Perform, policy: RetryPolicy) -> Item:
    """Attempt `item` until it is sent or failed; every outcome is written back to its row."""

    async def checkpoint() -> None:
        await save(sessions, item)

    while item.status == "pending":
        delay: float | None = None
        try:
            await perform(item, checkpoint)
            item.status, item.last_error, item.last_code = "sent", None, None
        except FeishuError as exc:
            item.attempts += 1
            item.last_error, item.last_code = str(exc)[:2000], exc.code
            if exc.retryable and item.attempts < policy.max_attempts:
                delay = policy.delay(item.attempts, exc.retry_after_s)
                log.info("outbox %s (%s) attempt %d: %s", item.id, item.kind, item.attempts, exc)
            else:
                item.status = "failed"
                log.warning("outbox %s (%s) failed: %s", item.id, item.kind, exc)
        except Exception as exc:  # a bug or a missing integration must not leave the row pending
            log.exception("outbox %s (%s) crashed", item.id, item.kind)
            item.attempts += 1
            item.status, item.last_error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        await save(sessions, item, delay)
        if delay is not None:
            await asyncio.sleep(delay)
    return item
