"""Scale-out tests: PostgreSQL only, real processes.

They read RUDDER_TEST_POSTGRES_URL and skip when it is unset, unless RUDDER_REQUIRE_POSTGRES=1,
under which a missing or unreachable database fails the run (as in tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from rudder.sandbox import SandboxServer
from tests.scale.cluster import Cluster

pytestmark = pytest.mark.postgres


def _pg_admin_url() -> str | None:
    url = os.environ.get("RUDDER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("RUDDER_REQUIRE_POSTGRES") == "1":
            pytest.fail("RUDDER_REQUIRE_POSTGRES=1 but RUDDER_TEST_POSTGRES_URL is not set")
        return None
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of its own for each test: processes in it outlive the test's own loop."""
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip("RUDDER_TEST_POSTGRES_URL is not set")
    import psycopg

    name = f"rudder_scale_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at RUDDER_TEST_POSTGRES_URL is not usable: {exc}")
    base, _, _ = admin.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server, httpx.AsyncClient(base_url=server.url) as sb:
        # Feishu re-pushes an unacked event at 15 s, 5 min, …; compressed here so events
        # sent while no instance holds a bot arrive once a survivor does.
        r = await sb.patch(
            "/_sandbox/api/settings",
            json={"retry_ladder_s": [0.5] * 10 + [1.0] * 30, "ack_timeout_s": 3.0},
        )
        assert r.status_code < 300, r.text
        yield server


@pytest.fixture
async def cluster(
    fresh_database: str, sandbox: SandboxServer, tmp_path: Path
) -> AsyncIterator[Cluster]:
    c = Cluster(
        database_url=fresh_database,
        sandbox_url=sandbox.url,
        home=tmp_path,
        secrets_key=secrets.token_hex(32),
    )
    c.env_extra["RUDDER_EXAMPLE_DELAY_MS"] = os.environ.get("RUDDER_EXAMPLE_DELAY_MS", "5")
    try:
        yield c
    finally:
        await c.close()
