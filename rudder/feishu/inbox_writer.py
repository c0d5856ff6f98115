"""Group commit for the inbox: many events per transaction, each caller released after its commit.

Why: a commit costs about the same for one row as for a hundred (one WAL sync on SQLite, one
round trip and flush on PostgreSQL), and SQLite has a single writer anyway. So one writer task
takes whatever events queued up while the previous transaction was committing, records them in
one transaction, and only then resolves each caller's future — the transport acks after that.
At low load a batch is one event and nothing waits for a timer.

Duplicates are decided per event inside the batch: the unique key (app_id, event_id) through
``ON CONFLICT DO NOTHING ... RETURNING id``, and the message key (app_id, message_id) through a
lookup in the same write transaction (one writer per process; SQLite's write lock serialises
processes). A duplicate gets its own row, outcome ``duplicate``, under a derived event_id.

Outcome updates from routing go through the same writer, so processing does not compete with
recording for the write lock one small transaction at a time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Insert, Table, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rudder.db.engine import WriteTurn, write_turn
from rudder.db.models import InboundEvent as InboundRow
from rudder.db.models import Integration

if TYPE_CHECKING:
    from rudder.feishu.inbox_sqlite import SqliteInbox

log = logging.getLogger(__name__)

_TABLE = cast(Table, InboundRow.__table__)
MAX_BATCH = 500  # bounds one transaction's size (and SQLite's bound-parameter count)


@dataclass(frozen=True, slots=True)
class Received:
    row_id: str | None
    duplicate: bool
    refused: bool = False  # another app's event on this bot's transport: recorded, never routed


@dataclass(slots=True)
class _Record:
    values: dict[str, Any]
    done: asyncio.Future[Received]


@dataclass(slots=True)
class _Outcome:
    row_id: str
    outcome: str
    reason: str | None
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Batch:
    records: list[_Record] = field(default_factory=list)
    outcomes: list[_Outcome] = field(default_factory=list)


class InboxWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dialect: str,
        url: URL | str | None = None,
    ) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._turn: WriteTurn | None = None
        # On-disk SQLite: each batch runs in one call on a writer thread (inbox_sqlite.py).
        self._sqlite: SqliteInbox | None = None
        if url is not None:
            from rudder.feishu.inbox_sqlite import SqliteInbox, sqlite_file_url

            sync_url = sqlite_file_url(url)
            if sync_url is not None:
                self._sqlite = SqliteInbox(sync_url)
                bind = sessions.kw.get("bind")
                self._turn = write_turn(bind) if isinstance(bind, AsyncEngine) else None
        self._records: list[_Record] = []
        self._outcomes: list[_Outcome] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # transactions committed (figures for tests and benchmarks)
        self.largest_batch = 0

    async def record(self, values: dict[str, Any]) -> Received:
        """Queue one row; returns once the transaction holding it committed (raises otherwise)."""
        if self._closed:
            raise RuntimeError("inbox is closed")
        done: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        self._records.append(_Record(values, done))
        self._kick()
        return await done

    async def set_outcome(self, row_id: str, outcome: str, reason: str | None) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append(_Outcome(row_id, outcome, reason, done))
        self._kick()
        await done

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5)
            if not self._task.done():
                self._task.cancel()
        if self._sqlite is not None:
            await self._sqlite.close()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    def _take(self) -> _Batch:
        batch = _Batch(self._records[:MAX_BATCH], self._outcomes[:MAX_BATCH])
        del self._records[:MAX_BATCH]
        del self._outcomes[:MAX_BATCH]
        return batch

    async def _run(self) -> None:
        while True:
            if not self._records and not self._outcomes:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take()
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail(batch, RuntimeError("inbox writer cancelled"))
                raise
            except Exception as exc:
                if len(batch.records) + len(batch.outcomes) == 1:
                    _fail(batch, exc)
                    continue
                # One bad row (say, its integration was just deleted) must not fail its
                # neighbours: retry each alone, so only the bad one is NACKed and re-pushed.
                log.warning("inbox batch of %d failed (%s); retrying one by one", _size(batch), exc)
                for single in _singles(batch):
                    try:
                        await self._commit(single)
                    except Exception as one:
                        _fail(single, one)

    async def _commit(self, batch: _Batch) -> None:
        if self._sqlite is not None:
            # The writer thread's connection takes the process's write turn like every other
            # writer (engine.WriteTurn), so the two never meet in SQLite's busy handler.
            if self._turn is not None:
                await self._turn.acquire(urgent=True)  # an ack waits for this commit
            try:
                results = await self._sqlite.commit(
                    [r.values for r in batch.records],
                    [(o.row_id, o.outcome, o.reason) for o in batch.outcomes],
                )
            finally:
                if self._turn is not None:
                    self._turn.release()
        else:
            results = await self._commit_session(batch)
        self._settle(batch, results)

    async def _commit_session(self, batch: _Batch) -> list[Received | Exception]:
        async with self._sessions() as session, session.begin():
            results = await self._insert(session, batch.records) if batch.records else []
            if batch.outcomes:
                table = _TABLE
                await session.execute(
                    update(table)
                    .where(table.c.id == bindparam("row_id"))
                    .values(outcome=bindparam("new_outcome"), reason=bindparam("new_reason")),
                    [
                        {"row_id": o.row_id, "new_outcome": o.outcome, "new_reason": o.reason}
                        for o in batch.outcomes
                    ],
                )
        return results

    def _settle(self, batch: _Batch, results: list[Received | Exception]) -> None:
        # Committed: only now may the transports ack.
        self.batches += 1
        self.largest_batch = max(self.largest_batch, _size(batch))
        for record, result in zip(batch.records, results, strict=True):
            if record.done.done():
                continue
            if isinstance(result, Exception):
                record.done.set_exception(result)
            else:
                record.done.set_result(result)
        for outcome in batch.outcomes:
            if not outcome.done.done():
                outcome.done.set_result(None)

    async def _insert(
        self, session: AsyncSession, records: list[_Record]
    ) -> list[Received | Exception]:
        owners = await _owners(session, {r.values["integration_id"] for r in records})
        results: dict[str, Received | Exception] = {}
        rows: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for record in records:
            row = record.values
            owner = owners.get(row["integration_id"])
            if owner is None:
                results[row["id"]] = LookupError(f"integration {row['integration_id']} is gone")
            elif row["app_id"] != owner:
                refused.append(_refused(row, owner))
                results[row["id"]] = Received(row["id"], False, refused=True)
            else:
                rows.append(row)
        if refused:
            await session.execute(_TABLE.insert(), refused)
        for row, result in zip(rows, await self._insert_owned(session, rows), strict=True):
            results[row["id"]] = result
        return [results[r.values["id"]] for r in records]

    async def _insert_owned(
        self, session: AsyncSession, rows: list[dict[str, Any]]
    ) -> list[Received]:
        if not rows:
            return []
        first_seen = await _known_messages(session, rows)
        fresh: list[dict[str, Any]] = []
        seen_events: set[tuple[str, str]] = set()
        for row in rows:
            event_key = (row["app_id"], row["event_id"])
            message_key = (row["app_id"], row["message_id"]) if row["message_id"] else None
            if event_key in seen_events or (message_key and message_key in first_seen):
                continue
            seen_events.add(event_key)
            if message_key:
                first_seen[message_key] = row["received_at"]
            fresh.append(row)
        inserted: set[str] = set()
        if fresh:
            inserted = set(await session.scalars(self._insert_ignoring_conflicts(), fresh))
        await _touch_integrations(session, [row for row in rows if row["id"] in inserted])
        duplicates = [row for row in rows if row["id"] not in inserted]
        if not duplicates:
            return [Received(row["id"], False) for row in rows]
        originals = await _originals(session, duplicates)
        traces = []
        for row in duplicates:
            at = originals.get((row["app_id"], row["event_id"])) or first_seen.get(
                (row["app_id"], row["message_id"])
            )
            traces.append(_duplicate_trace(row, at))
        await session.execute(_TABLE.insert(), traces)
        return [Received(row["id"], False) if row["id"] in inserted else _DUP for row in rows]

    def _insert_ignoring_conflicts(self) -> Any:
        table = _TABLE
        stmt: Insert
        if self._dialect == "postgresql":
            stmt = postgresql.insert(table).on_conflict_do_nothing(
                index_elements=["app_id", "event_id"]
            )
        else:
            stmt = sqlite.insert(table).on_conflict_do_nothing(
                index_elements=["app_id", "event_id"]
            )
        return stmt.returning(table.c.id)


_DUP = Received(None, True)


async def _known_messages(
    session: AsyncSession, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], datetime]:
    """(app_id, message_id) already recorded, with the first time each was received."""
    keys = {(r["app_id"], r["message_id"]) for r in rows if r["message_id"]}
    if not keys:
        return {}
    found = await session.execute(
        select(InboundRow.app_id, InboundRow.message_id, InboundRow.received_at).where(
            _pairs_in(InboundRow.app_id, InboundRow.message_id, keys)
        )
    )
    earliest: dict[tuple[str, str], datetime] = {}
    for app_id, message_id, at in found:
        key = (app_id, message_id or "")
        if key not in earliest or at < earliest[key]:
            earliest[key] = at
    return earliest


def _pairs_in(first: Any, second: Any, pairs: set[tuple[str, str]]) -> ColumnElement[bool]:
    """`(first, second) IN pairs`, written so that an index on (first, second) is used.

    SQLite plans a row-value `IN (VALUES …)` as a scan of the whole table, index or not; one
    `first = ? AND second IN (…)` per distinct `first` (usually one app per batch) is a search.
    """
    groups: dict[str, list[str]] = {}
    for a, b in sorted(pairs):
        groups.setdefault(a, []).append(b)
    return or_(*(and_(first == a, second.in_(bs)) for a, bs in groups.items()))


async def _originals(
    session: AsyncSession, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], datetime]:
    keys = sorted({(r["app_id"], r["event_id"]) for r in rows})
    found = await session.execute(
        select(InboundRow.app_id, InboundRow.event_id, InboundRow.received_at).where(
            _pairs_in(InboundRow.app_id, InboundRow.event_id, set(keys))
        )
    )
    return {(a, e): at for a, e, at in found}


async def _owners(session: AsyncSession, integration_ids: set[str]) -> dict[str, str]:
    found = await session.execute(
        select(Integration.id, Integration.app_id).where(Integration.id.in_(integration_ids))
    )
    return {integration_id: app_id or "" for integration_id, app_id in found}


def _refused(row: dict[str, Any], owner: str) -> dict[str, Any]:
    # Under a derived event_id: a forged or misrouted event must not occupy the real app's key.
    return {
        **row,
        "event_id": f"{row['event_id'][:80]}#refused-{secrets.token_hex(4)}",
        "outcome": "refused",
        "reason": f"event belongs to app {row['app_id']}, not {owner or '?'}",
    }


def _duplicate_trace(row: dict[str, Any], first: datetime | None) -> dict[str, Any]:
    # Keep a trace of the re-push under a derived id; the unique key stays on the original.
    # The id column is 100 characters; Feishu's event ids are 32.
    return {
        **row,
        "id": secrets.token_hex(16),
        "event_id": f"{row['event_id'][:80]}#dup-{secrets.token_hex(4)}",
        "payload": {},
        "outcome": "duplicate",
        "reason": f"already received at {first.isoformat()}" if first else "already received",
    }


async def _touch_integrations(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    latest: dict[str, datetime] = {}
    for row in rows:
        latest[row["integration_id"]] = max(
            row["received_at"], latest.get(row["integration_id"], row["received_at"])
        )
    for integration_id, at in latest.items():
        await session.execute(
            update(Integration).where(Integration.id == integration_id).values(last_event_at=at)
        )


def _size(batch: _Batch) -> int:
    return len(batch.records) + len(batch.outcomes)


def _singles(batch: _Batch) -> list[_Batch]:
    return [_Batch(records=[r]) for r in batch.records] + [
        _Batch(outcomes=[o]) for o in batch.outcomes
    ]


def _fail(batch: _Batch, exc: BaseException) -> None:
    futures: list[asyncio.Future[Any]] = [r.done for r in batch.records]
    futures += [o.done for o in batch.outcomes]
    for future in futures:
        if not future.done():
            future.set_exception(exc)
