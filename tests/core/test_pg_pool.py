"""PostgreSQL connections per process are bounded and settable: several instances and workers
on one server must not run it out of connections (100 by default)."""

from __future__ import annotations

import pytest

from rudder.db.engine import MAX_OVERFLOW, POOL_SIZE, create_engine, pg_pool_limits

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/unused"


def test_defaults_leave_room_for_four_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUDDER_DB_POOL_SIZE", raising=False)
    monkeypatch.delenv("RUDDER_DB_MAX_OVERFLOW", raising=False)
    assert pg_pool_limits() == (POOL_SIZE, MAX_OVERFLOW)
    # The pool, the run queue's 4 and the notification bus's 1, four processes: under 100.
    assert 4 * (POOL_SIZE + MAX_OVERFLOW + 4 + 1) < 100
    engine = create_engine(PG_URL)  # no connection is made until one is used
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (POOL_SIZE, MAX_OVERFLOW)  # type: ignore[attr-defined]


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUDDER_DB_POOL_SIZE", "3")
    monkeypatch.setenv("RUDDER_DB_MAX_OVERFLOW", "0")
    engine = create_engine(PG_URL)
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "raw", "said"),
    [
        ("RUDDER_DB_POOL_SIZE", "ten", "RUDDER_DB_POOL_SIZE must be a whole number, got 'ten'"),
        ("RUDDER_DB_POOL_SIZE", "0", "RUDDER_DB_POOL_SIZE must be at least 1, got 0"),
        ("RUDDER_DB_MAX_OVERFLOW", "-1", "RUDDER_DB_MAX_OVERFLOW must be at least 0, got -1"),
    ],
)
def test_a_bad_value_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, said: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError) as caught:
        pg_pool_limits()
    assert str(caught.value) == said
