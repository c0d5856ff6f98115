"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL.

PostgreSQL tests read RUDDER_TEST_POSTGRES_URL and skip when it is unset, unless
RUDDER_REQUIRE_POSTGRES=1, under which a missing or unreachable database fails the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from rudder.config import Settings, normalize_database_url
from rudder.server import RunningServer, create_app
from rudder.services import Services

TEST_SECRETS_KEY = secrets.token_hex(32)
BACKENDS = ["sqlite", "postgres"]


def _pg_admin_url() -> str | None:
    url = os.environ.get("RUDDER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("RUDDER_REQUIRE_POSTGRES") == "1":
            pytest.fail("RUDDER_REQUIRE_POSTGRES=1 but RUDDER_TEST_POSTGRES_URL is not set")
        return None
    return url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A throw-away PostgreSQL database for this test session (None when not configured)."""
    admin = _pg_admin_url()
    if admin is None:
        yield None
        return
    import psycopg

    name = f"rudder_test_{os.getpid()}_{secrets.token_hex(3)}"
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at RUDDER_TEST_POSTGRES_URL is not usable: {exc}")
    base, _, _ = plain.rpartition("/")
    yield normalize_database_url(f"{base}/{name}")
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_all(url: str) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rudder.db'}"
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("RUDDER_TEST_POSTGRES_URL is not set")
    _truncate_all(url)
    return str(url)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=db_url,
        secrets_key=TEST_SECRETS_KEY,
        public_url="http://rudder.test",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def services(app: FastAPI) -> Services:
    svc: Services = app.state.services
    return svc


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rudder.test") as c:
        yield c


@pytest.fixture(autouse=True)
def _fast_example_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bundled example agent types word by word; tests don't need to wait for it.
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", os.environ.get("RUDDER_EXAMPLE_DELAY_MS", "5"))


# -- Feishu: Rudder wired to a real sandbox on loopback -------------------------------------------

from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from rudder.sandbox import SandboxServer  # noqa: E402


@dataclass
class FeishuRig:
    """Rudder (in-process ASGI) whose every Feishu/Lark call goes to a sandbox on loopback."""

    app: FastAPI
    client: httpx.AsyncClient  # Rudder's API
    sandbox: SandboxServer
    sb: httpx.AsyncClient  # the sandbox (its test-control API under /_sandbox/api)

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sb.request(method, "/_sandbox/api" + path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture
async def rig(settings: Settings) -> AsyncIterator[FeishuRig]:
    async with (
        SandboxServer() as sandbox,
        httpx.AsyncClient(base_url=sandbox.url, timeout=10) as sb,
    ):
        # Poll registrations fast; the interval is the server's to set (reference §2.5).
        await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
        settings.feishu_base_url = sandbox.url
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://rudder.test", timeout=20
            ) as c:
                yield FeishuRig(app=application, client=c, sandbox=sandbox, sb=sb)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[FeishuRig]:
    """The `rig` with Rudder on a real socket (uvicorn, port 0): the sandbox can push webhooks
    and card callbacks to it."""
    async with (
        SandboxServer() as sandbox,
        httpx.AsyncClient(base_url=sandbox.url, timeout=10) as sb,
    ):
        settings.feishu_base_url = sandbox.url
        application = create_app(settings)
        async with (
            RunningServer(application) as server,
            httpx.AsyncClient(base_url=server.url, timeout=20) as c,
        ):
            yield FeishuRig(app=application, client=c, sandbox=sandbox, sb=sb)


# -- Test tiers ------------------------------------------------------------------------------------
# `make test-fast` runs the unit tier (`-m "not slow"`); `make test` runs everything. A test is in
# the slow tier when it needs PostgreSQL, a real browser, a server on loopback (the sandbox, a
# cluster), or starts Rudder or a CLI as a process.
SLOW_FIXTURES = {"rig", "served", "sandbox", "cluster", "fresh_database", "live", "bot"}
SLOW_PATHS = (
    "tests/e2e_cli_runtimes/",
    "tests/scale/",
    "tests/listen/",
    "tests/firsthour/test_console.py",
    "tests/firsthour/test_readme_walk.py",
    "tests/outbound/test_kill_mid_reply.py",
    "tests/media/test_kill_mid_upload.py",
    "tests/hostile/test_api_fuzz.py",
    "tests/hostile/test_fuzz_decoders.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        path = Path(str(item.path)).relative_to(root).as_posix()
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgres"
        if (
            on_postgres
            or item.get_closest_marker("e2e") is not None
            or item.get_closest_marker("postgres") is not None
            or fixtures & SLOW_FIXTURES
            or path.startswith(SLOW_PATHS)
        ):
            item.add_marker(pytest.mark.slow)
