"""The inbox's SQLite path: a whole batch in one call to a dedicated writer thread.

Why: aiosqlite sends every statement (and every fetch, BEGIN and COMMIT) to its worker thread
and back — about 25 hand-offs per batch, 0.2–1 ms each on busy cores — while the batch's SQL
itself takes ~2.5 ms. Here the batch (owner check, duplicate lookups, conflict-checked inserts,
outcome updates, commit) runs as plain synchronous SQLAlchemy Core on a connection of its own,
in one thread that does nothing else: one hand-off there and one back per batch.

The connection has the same pragmas as the application's engine (WAL, synchronous=NORMAL,
foreign keys, busy_timeout) and takes the write lock with ``BEGIN IMMEDIATE`` *before* its
lookups, so the duplicate checks and the inserts are one serialised unit even across processes.
A busy wait for the lock blocks only this thread, never the event loop.

WAL checkpoints (copying the log back into the database file, with an fsync) would otherwise
run inside whichever commit crosses the 1,000-page mark and hold up that batch's acks — the
tail of the ack latency. The writer connection turns automatic checkpoints off and every
`CHECKPOINT_EVERY` commits asks a second thread, on its own connection, for a PASSIVE
checkpoint, which runs beside the writer without taking the write lock. Other connections
keep SQLite's automatic checkpoints, so the log stays bounded even if this one is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url

from rudder.db.engine import SQLITE_BUSY_TIMEOUT_MS, _sqlite_pragmas
from rudder.db.models import InboundEvent as InboundRow
from rudder.db.models import Integration
from rudder.feishu.inbox_writer import (
    _DUP,
    _TABLE,
    Received,
    _duplicate_trace,
    _pairs_in,
    _refused,
)

Outcome = tuple[str, str, str | None]  # row id, outcome, reason

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 50  # commits between two background checkpoints (a few hundred WAL pages)


def sqlite_file_url(url: URL | str) -> URL | None:
    """The synchronous (pysqlite) URL for an on-disk SQLite database; None for anything else."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or "mode=memory" in str(parsed):
        return None  # a private in-memory database cannot be shared with a second connection
    return parsed.set(drivername="sqlite")


class SqliteInbox:
    def __init__(self, url: URL) -> None:
        self._engine: Engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        event.listen(self._engine, "connect", _connect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-sqlite")
        self._path = url.database or ""
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-ckpt")
        self._checkpoint_db: sqlite3.Connection | None = None
        self._checkpoint: Future[None] | None = None
        self._commits = 0
        self._insert = (
            sqlite.insert(_TABLE)
            .on_conflict_do_nothing(index_elements=["app_id", "event_id"])
            .returning(_TABLE.c.id)
        )
        self._update = (
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("row_id"))
            .values(outcome=bindparam("new_outcome"), reason=bindparam("new_reason"))
        )

    async def commit(
        self, records: list[dict[str, Any]], outcomes: list[Outcome]
    ) -> list[Received | Exception]:
        """Record `records` and apply `outcomes` in one transaction; returns once committed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit, records, outcomes)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._engine.dispose)
            await loop.run_in_executor(self._checkpointer, self._close_checkpointer)
        finally:
            self._thread.shutdown(wait=False)
            self._checkpointer.shutdown(wait=False)

    # -- in the writer thread --------------------------------------------------------------

    def _commit(
        self, records: list[dict[str, Any]], outcomes: list[Outcome]
    ) -> list[Received | Exception]:
        with self._engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                results = self._records(conn, records) if records else []
                if outcomes:
                    conn.execute(
                        self._update,
                        [
                            {"row_id": row_id, "new_outcome": outcome, "new_reason": reason}
                            for row_id, outcome, reason in outcomes
                        ],
                    )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = self._checkpointer.submit(self._run_checkpoint)
        return results

    # -- in the checkpoint thread ----------------------------------------------------------

    def _run_checkpoint(self) -> None:
        try:
            if self._checkpoint_db is None:
                self._checkpoint_db = sqlite3.connect(
                    self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
            self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            # Harmless: the next one (or another connection's automatic one) catches up.
            log.warning("inbox: background WAL checkpoint failed: %s", exc)

    def _close_checkpointer(self) -> None:
        if self._checkpoint_db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._checkpoint_db.close()
            self._checkpoint_db = None

    def _records(
        self, conn: Connection, records: list[dict[str, Any]]
    ) -> list[Received | Exception]:
        ids = {r["integration_id"] for r in records}
        owners = {
            integration_id: app_id or ""
            for integration_id, app_id in conn.execute(
                select(Integration.id, Integration.app_id).where(Integration.id.in_(ids))
            )
        }
        results: dict[str, Received | Exception] = {}
        rows: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for row in records:
            owner = owners.get(row["integration_id"])
            if owner is None:
                results[row["id"]] = LookupError(f"integration {row['integration_id']} is gone")
            elif row["app_id"] != owner:
                refused.append(_refused(row, owner))
                results[row["id"]] = Received(row["id"], False, refused=True)
            else:
                rows.append(row)
        if refused:
            conn.execute(_TABLE.insert(), refused)
        if rows:
            for row, result in zip(rows, self._owned(conn, rows), strict=True):
                results[row["id"]] = result
        return [results[r["id"]] for r in records]

    def _owned(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Received]:
        first_seen = _known_messages(conn, rows)
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
            inserted = set(conn.execute(self._insert, fresh).scalars())
        latest: dict[str, datetime] = {}
        for row in rows:
            if row["id"] in inserted:
                at = latest.get(row["integration_id"])
                latest[row["integration_id"]] = (
                    row["received_at"] if at is None else max(at, row["received_at"])
                )
        for integration_id, at in latest.items():
            conn.execute(
                update(Integration).where(Integration.id == integration_id).values(last_event_at=at)
            )
        duplicates = [row for row in rows if row["id"] not in inserted]
        if not duplicates:
            return [Received(row["id"], False) for row in rows]
        keys = {(r["app_id"], r["event_id"]) for r in duplicates}
        originals = {
            (a, e): at
            for a, e, at in conn.execute(
                select(InboundRow.app_id, InboundRow.event_id, InboundRow.received_at).where(
                    _pairs_in(InboundRow.app_id, InboundRow.event_id, keys)
                )
            )
        }
        traces = [
            _duplicate_trace(
                row,
                originals.get((row["app_id"], row["event_id"]))
                or first_seen.get((row["app_id"], row["message_id"])),
            )
            for row in duplicates
        ]
        conn.execute(_TABLE.insert(), traces)
        return [Received(row["id"], False) if row["id"] in inserted else _DUP for row in rows]


def _known_messages(
    conn: Connection, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], datetime]:
    keys = {(r["app_id"], r["message_id"]) for r in rows if r["message_id"]}
    if not keys:
        return {}
    earliest: dict[tuple[str, str], datetime] = {}
    found = conn.execute(
        select(InboundRow.app_id, InboundRow.message_id, InboundRow.received_at).where(
            _pairs_in(InboundRow.app_id, InboundRow.message_id, keys)
        )
    )
    for app_id, message_id, at in found:
        key = (app_id, message_id or "")
        if key not in earliest or at < earliest[key]:
            earliest[key] = at
    return earliest


def _connect(dbapi_connection: Any, record: Any) -> None:
    # The sqlite3 module must not open transactions itself: BEGIN IMMEDIATE is issued explicitly.
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, record)
    # Checkpoints run in the background thread instead of inside a commit (module docstring).
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
