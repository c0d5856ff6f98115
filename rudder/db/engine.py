"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
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

SQLITE_BUSY_TIMEOUT_MS = 5000


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
    """

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
        info.pop(_IN_WRITE, None)

    event.listen(sync_engine, "begin", _forget)

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _begin_on_write(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        info = conn.connection.info
        if not info.get(_IN_WRITE) and _is_write(statement):
            cursor.execute("BEGIN IMMEDIATE")
            info[_IN_WRITE] = True

    event.listen(sync_engine, "commit", _forget)
    event.listen(sync_engine, "rollback", _forget)

    @event.listens_for(sync_engine.pool, "reset")
    def _reset(_dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
        record.info.pop(_IN_WRITE, None)


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
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_nullpool_engine(url: str) -> AsyncEngine:
    """An engine that holds no idle connections (used for one-off admin work)."""
    if url.startswith("sqlite"):
        prepare_sqlite_file(url)
    return create_async_engine(url, poolclass=NullPool)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
