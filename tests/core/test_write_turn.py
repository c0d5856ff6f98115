"""SQLite writers take one turn at a time (engine.WriteTurn): none fails with "database is locked"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from rudder.db.engine import create_engine, session_factory, write_turn


async def test_writers_holding_the_lock_across_awaits_all_commit(tmp_path: Path) -> None:
    """40 write transactions, each held open across an await for 0.15 s: 6 s in all, longer
    than SQLite's busy_timeout (5 s). Racing in SQLite's busy handler, the last ones failed
    with "database is locked"; taking turns, every one commits."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    sessions = session_factory(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))

        async def writer(n: int) -> None:
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0.15)  # e.g. waiting for the loop between statements

        await asyncio.gather(*(writer(n) for n in range(40)))
        async with sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 40
    finally:
        await engine.dispose()


async def test_a_nested_write_fails_at_once_and_urgent_writers_go_first(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    sessions = session_factory(engine)
    turn = write_turn(engine)
    assert turn is not None
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
        async with sessions() as outer, outer.begin():
            await outer.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(Exception, match="nested write transaction"):
                async with sessions() as inner, inner.begin():
                    await inner.execute(text("INSERT INTO t VALUES (2)"))

        order: list[str] = []
        await turn.acquire()

        async def waiter(name: str, urgent: bool) -> None:
            await turn.acquire(urgent=urgent)
            order.append(name)
            turn.release()

        tasks = [asyncio.create_task(waiter("normal", False))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(waiter("urgent", True)))
        await asyncio.sleep(0)
        assert turn.waiting == 2
        turn.release()
        await asyncio.gather(*tasks)
        assert order == ["urgent", "normal"]
    finally:
        await engine.dispose()


async def test_a_writer_cancelled_mid_statement_gives_the_turn_back(tmp_path: Path) -> None:
    """Cancelled inside a statement, the connection is invalidated and never reset by the pool;
    the turn must still come back, or every later writer of the process waits until it gives
    up ("no write turn within 60 s"). (SQLite's own lock goes with the connection.)"""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    sessions = session_factory(engine)
    turn = write_turn(engine)
    assert turn is not None
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) "
        "SELECT count(*) FROM c"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))

        async def stuck() -> None:
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES (1)"))
                await session.execute(text(slow))  # cancelled while SQLite works on this

        task = asyncio.create_task(stuck())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(BaseException):  # noqa: B017 - cancelled, or the driver's own error
            await task
        await asyncio.wait_for(turn.acquire(), 5)
        turn.release()
    finally:
        await engine.dispose()
