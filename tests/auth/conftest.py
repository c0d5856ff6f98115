"""Rudder in authenticated mode, in process, with two organizations and their people."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from rudder import security
from rudder.api import routes_auth
from rudder.config import DeploymentMode, Settings
from rudder.db.models import Agent, Membership, Organization, User
from rudder.domain import auth
from rudder.server import create_app
from rudder.services import Services
from tests.conftest import TEST_SECRETS_KEY

BASE_URL = "http://rudder.test"
SAME_ORIGIN = {"Origin": BASE_URL}
SESSION_SECRET = "test-session-secret-for-auth-tests"
PASSWORD = "correct horse battery"


def build_app(settings: Settings) -> FastAPI:
    """create_app plus the sign-in routes and the CSRF check, unless create_app already has them."""
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/api/auth/login" for r in app.routes):
        app.include_router(routes_auth.router)
    if not any(getattr(m, "cls", None) is security.CSRFMiddleware for m in app.user_middleware):
        security.install(app, settings)
    return app


def make_settings(db_url: str, home: Path, mode: DeploymentMode) -> Settings:
    return Settings(
        home=home,
        database_url=db_url,
        secrets_key=TEST_SECRETS_KEY,
        public_url=BASE_URL,
        deployment_mode=mode,
        session_secret=SESSION_SECRET,
    )


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "home", DeploymentMode.AUTHENTICATED)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Behaves like our own pages in a browser: every request says it comes from this site."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=SAME_ORIGIN) as c:
        yield c


@dataclass
class People:
    org_id: str  # the default organization: Ada owns it, Max is a member
    agent_id: str  # its example agent
    other_org_id: str  # Bob's organization
    other_agent_id: str
    ada: str = "ada@example.com"
    max: str = "max@example.com"
    bob: str = "bob@example.com"


@pytest.fixture
async def people(app: FastAPI) -> People:
    return await seed_people(app)


async def seed_people(app: FastAPI) -> People:
    services: Services = app.state.services
    password_hash = auth.hash_password(PASSWORD)
    async with services.sessions() as session, session.begin():
        org = (await session.scalars(select(Organization).order_by(Organization.created_at))).one()
        agent = (await session.scalars(select(Agent).where(Agent.org_id == org.id))).one()
        ada = User(email="ada@example.com", name="Ada", password_hash=password_hash)
        max_ = User(email="max@example.com", name="Max", password_hash=password_hash)
        bob = User(email="bob@example.com", name="Bob", password_hash=password_hash)
        other = Organization(name="Other", slug="other")
        session.add_all([ada, max_, bob, other])
        await session.flush()
        other_agent = Agent(org_id=other.id, name="Theirs", runtime_type="process")
        session.add_all(
            [
                Membership(org_id=org.id, user_id=ada.id, role="owner"),
                Membership(org_id=org.id, user_id=max_.id, role="member"),
                Membership(org_id=other.id, user_id=bob.id, role="owner"),
                other_agent,
            ]
        )
        await session.flush()
        return People(org.id, agent.id, other.id, other_agent.id)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})
