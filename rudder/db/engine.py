"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

SQLITE_BUSY_TIMEOUT_MS = 5000
# How long a writer waits for its turn before giving up with an error (it would be a bug: a
# transaction held this long, e.g. across a network call, or a write nested in another's).
WRITE_TURN_TIMEOUT_S = 60.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite;
    # busy_timeout makes a second writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


_READ_VERBS = frozenset({"SELECT", "PRAGMA", "EXPLAIN"})
_IN_WRITE = "rudder_in_write_tx"


class WriteTurn:
    """One writer at a time per process on SQLite, queued in asyncio rather than in SQLite.

    Why: SQLite has a single write lock, and a writer that cannot get it retries inside the
    busy handler with sleeps, unfairly, and gives up with "database is locked" after
    busy_timeout. On a loaded event loop a write transaction can stay open longer than that
    (its coroutine waits its turn to run its next statement), so under load some writers lost
    the race. Every write transaction of the process (the application's sessions and the
    inbox's writer thread) now first takes this turn, first come first served, without a
    timeout that matters; only other processes (the CLI on the same file) still meet the busy
    handler. `urgent` waiters (the inbox, whose commit an ack to Feishu waits for, within
    Feishu's 3 s) go before the others.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._holder: asyncio.Task[Any] | None = None

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing from the old one counts
            self._loop, self._held, self._holder = loop, False, None
            self._waiters.clear()
            self._urgent.clear()
        return loop

    @property
    def waiting(self) -> int:
        return len(self._waiters) + len(self._urgent)

    async def acquire(self, *, urgent: bool = False) -> None:
        loop, me = self._bind(), asyncio.current_task()
        if not self._held:
            self._held, self._holder = True, me
            return
        if me is not None and self._holder is me:
            # A second write transaction opened while this task's first is still open would
            # wait for itself: a bug, reported at once instead of after a timeout.
            raise sqlite3.OperationalError("nested write transaction on another connection")
        turn: asyncio.Future[None] = loop.create_future()
        queue = self._urgent if urgent else self._waiters
        queue.append(turn)
        try:
            async with asyncio.timeout(WRITE_TURN_TIMEOUT_S):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self.release()  # handed to us just as we gave up: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            if isinstance(exc, TimeoutError):
                raise sqlite3.OperationalError(
                    f"no write turn within {WRITE_TURN_TIMEOUT_S:g} s (a write transaction "
                    "is stuck)"
                ) from None
            raise
        self._holder = me

    def release(self) -> None:
        if not self._held:
            return
        self._holder = None
        for queue in (self._urgent, self._waiters):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the turn passes on; still held
                    return
        self._held = False


def write_turn(engine: AsyncEngine) -> WriteTurn | None:
    """The engine's write turn (SQLite), or None (PostgreSQL has row locks of its own)."""
    found = getattr(engine.sync_engine, "_rudder_writer", None)
    return found if isinstance(found, WriteTurn) else None


def _is_write(statement: str) -> bool:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SELECT"
    return verb not in _READ_VERBS


def _install_sqlite_transactions(sync_engine: Any) -> None:
    """Reads run in autocommit; a transaction starts, IMMEDIATE, at the first write.

    Why: in WAL mode a deferred transaction that read first and then writes fails at once with
    "database is locked" when another connection wrote in between (no busy wait on a lock
    upgrade). BEGIN IMMEDIATE does wait on busy_timeout. And starting it only at the first write
    means a request that merely reads never holds the write lock while it awaits other work in
    the same event loop.

    Every write transaction first takes the process's `WriteTurn` (see there), released when
    it commits or rolls back.
    """
    turn = WriteTurn()
    sync_engine._rudder_writer = turn  # read by `write_turn`

    @event.listens_for(sync_engine, "connect")
    def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None

    def _forget(conn: Any) -> None:
        try:
            info = conn.connection.info
        except exc.SQLAlchemyError:
            # An invalidated connection (e.g. its task was cancelled mid-query): the pool's
            # reset hook below clears the flag when the connection goes back.
            return
        if info.pop(_IN_WRITE, None):
            turn.release()

    event.listen(sync_engine, "begin", _forget)

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _begin_on_write(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        info = conn.connection.info
        if not info.get(_IN_WRITE) and _is_write(statement):
            # In SQLAlchemy's greenlet on the event loop: wait for the turn without blocking it.
            await_only(turn.acquire())
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except BaseException:
                turn.release()
                raise
            info[_IN_WRITE] = True

    event.listen(sync_engine, "commit", _forget)
    event.listen(sync_engine, "rollback", _forget)

    @event.listens_for(sync_engine.pool, "reset")
    def _reset(_dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
        if record.info.pop(_IN_WRITE, None):
            turn.release()

    # An invalidated connection (its task cancelled mid-statement, say) is never reset: the pool
    # discards it and clears its record's info at the next checkout, which would keep the turn
    # held forever and stall every writer after it. Give the turn back when it goes.
    @event.listens_for(sync_engine.pool, "invalidate")
    def _invalidated(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        if record.info.pop(_IN_WRITE, None):
            turn.release()

    @event.listens_for(sync_engine.pool, "close")
    def _closed(_dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_IN_WRITE, None):
            turn.release()


def _sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def prepare_sqlite_file(url: str) -> None:
    """Create the database file owner-only (0600) before SQLite does, and tighten it and its
    -wal/-shm if an older version left them readable by others: the file holds every bot's
    encrypted credentials, the sessions and the conversations. SQLite creates -wal and -shm with
    the database file's mode, so these follow."""
    path = _sqlite_path(url)
    if path is None:
        return
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                name.chmod(0o600)
        except FileNotFoundError:
            continue


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        prepare_sqlite_file(url)
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _install_sqlite_transactions(engine.sync_engine)
        return engine
    size, overflow = pg_pool_limits()
    return create_async_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=size, max_overflow=overflow
    )


# Per process, on PostgreSQL: at most POOL_SIZE + MAX_OVERFLOW connections of this pool, plus
# the run queue's (4) and the notification bus's (1). Every instance and worker counts against
# the server's max_connections (100 by default): 2 instances and 2 workers stay near 80. A task
# that finds the pool busy waits for a connection instead of the server refusing one.
POOL_SIZE = 5
MAX_OVERFLOW = 10


def pg_pool_limits() -> tuple[int, int]:
    """(pool size, overflow) from RUDDER_DB_POOL_SIZE / RUDDER_DB_MAX_OVERFLOW."""
    found: list[int] = []
    for name, default, least in (
        ("RUDDER_DB_POOL_SIZE", POOL_SIZE, 1),
        ("RUDDER_DB_MAX_OVERFLOW", MAX_OVERFLOW, 0),
    ):
        raw = os.environ.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
        found.append(value)
    return found[0], found[1]


def create_nullpool_engine(url: str) -> AsyncEngine:
    """An engine that holds no idle connections (used for one-off admin work)."""
    if url.startswith("sqlite"):
        prepare_sqlite_file(url)
    return create_async_engine(url, poolclass=NullPool)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
