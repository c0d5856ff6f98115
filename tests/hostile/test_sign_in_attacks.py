"""Sign-in under attack, against Rudder in authenticated mode on a real socket: wrong passwords
must not stall the event loop (it owns every bot's 3-second ack window), parallel guesses are
throttled like sequential ones, and a rebound Host is not "same-origin" for a signed-in browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select

from rudder.config import DeploymentMode, Settings
from rudder.db.models import Membership, Organization, User
from rudder.server import RunningServer, create_app
from rudder.services import Services
from tests.conftest import TEST_SECRETS_KEY
from tests.hostile.conftest import count

PUBLIC = "http://rudder.test"
PASSWORD = "correct horse battery"
EMAIL = "ada@example.com"
MAX_STALL_S = 0.150
# Ada's hash is costlier than the default (one lane, so a verification is one long computation):
# on the loop, one wrong password stalls it for a whole verification; in threads, the loop only
# waits for the CPU like everything else on a loaded machine.
COSTLY = PasswordHasher(time_cost=4, parallelism=1)


@dataclass
class Signed:
    url: str
    port: int
    org_id: str
    password_hash: str


@pytest.fixture
async def rudder(db_url: str, tmp_path: Path) -> AsyncIterator[Signed]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=db_url,
        secrets_key=TEST_SECRETS_KEY,
        public_url=PUBLIC,
        deployment_mode=DeploymentMode.AUTHENTICATED,
        session_secret="session-secret-of-the-sign-in-attacks",
    )
    found: list[Services] = []
    async with RunningServer(create_app(settings, on_start=found.append)) as server:
        services = found[0]
        password_hash = await asyncio.to_thread(COSTLY.hash, PASSWORD)
        async with services.sessions() as session, session.begin():
            org = (await session.scalars(select(Organization))).first()
            assert org is not None
            user = User(email=EMAIL, name="Ada", password_hash=password_hash)
            session.add(user)
            await session.flush()
            session.add(Membership(org_id=org.id, user_id=user.id, role="owner"))
        yield Signed(server.url, server.port, org.id, password_hash)


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def _one_verification_s(password_hash: str) -> float:
    started = time.perf_counter()
    with contextlib.suppress(VerificationError):
        COSTLY.verify(password_hash, "not it")
    return time.perf_counter() - started


async def test_wrong_passwords_do_not_stall_the_event_loop(rudder: Signed) -> None:
    loop = asyncio.get_running_loop()
    verification_s = await asyncio.to_thread(_one_verification_s, rudder.password_hash)
    bound = max(MAX_STALL_S, verification_s / 2)
    stalls: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = loop.time()
            stalls.append(now - last - 0.005)
            last = now

    async with httpx.AsyncClient(base_url=rudder.url, timeout=30) as client:
        await _login(client, "warm@example.com", "x" * 8)  # the dummy hash is made once
        watching = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        answers = await asyncio.gather(
            *(_login(client, EMAIL, f"wrong password {i}") for i in range(3)),
            _login(client, "nobody@example.com", "a guess"),
        )
        stop.set()
        await watching
    count("wrong-password sign-ins while the event loop was watched", len(answers))
    assert [r.status_code for r in answers] == [401] * len(answers)
    worst = max(stalls)
    assert worst < bound, (
        f"the event loop stalled {worst * 1000:.0f} ms; one verification takes "
        f"{verification_s * 1000:.0f} ms"
    )
    count("wrong-password sign-ins without an event-loop stall", len(answers))


async def test_parallel_guesses_are_throttled_like_sequential_ones(rudder: Signed) -> None:
    """Five failures per email: eight guesses at once must not all be checked."""
    async with httpx.AsyncClient(base_url=rudder.url, timeout=60) as client:
        answers = await asyncio.gather(*(_login(client, EMAIL, f"guess {i}") for i in range(8)))
        count("parallel password guesses sent", len(answers))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * 5 + [429] * 3, statuses
        count("parallel password guesses throttled", statuses.count(429))
        # The right password, after five failures: still throttled.
        assert (await _login(client, EMAIL, PASSWORD)).status_code == 429


async def test_a_rebound_host_is_not_same_origin_for_a_signed_in_browser(
    rudder: Signed,
) -> None:
    """A page on rebind.evil.example (re-pointed at our address) sends Origin == Host: its own."""
    evil = f"rebind.evil.example:{rudder.port}"
    tokens = f"/api/orgs/{rudder.org_id}/api-tokens"
    async with httpx.AsyncClient(base_url=rudder.url, timeout=30) as browser:
        assert (await _login(browser, EMAIL, PASSWORD)).status_code == 200
        r = await browser.post(
            tokens, json={"name": "stolen"}, headers={"Host": evil, "Origin": f"http://{evil}"}
        )
        count("rebound-host requests with a session tried")
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "csrf"
        count("rebound-host requests with a session refused")
        # Our own origins: the public URL, and loopback as the request's own Host.
        r = await browser.post(tokens, json={"name": "mine"}, headers={"Origin": PUBLIC})
        assert r.status_code == 201, r.text
        r = await browser.post(tokens, json={"name": "local"}, headers={"Origin": rudder.url})
        assert r.status_code == 201, r.text
        names = {t["name"] for t in (await browser.get(tokens)).json()}
    assert "stolen" not in names and {"mine", "local"} <= names
