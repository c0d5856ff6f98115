"""The lease store on a real PostgreSQL, and rendezvous hashing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from rudder.config import normalize_database_url
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Agent, Integration, Organization
from rudder.scale import hrw
from rudder.scale.leases import PgLeaseStore
from rudder.scale.schema import upgrade_serialized

TTL = 0.5


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[tuple[PgLeaseStore, str]]:
    engine = create_engine(normalize_database_url(fresh_database))
    await upgrade_serialized(engine)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        org = Organization(name="O", slug="o")
        session.add(org)
        await session.flush()
        agent = Agent(org_id=org.id, name="A", runtime_type="process", runtime_config={})
        session.add(agent)
        await session.flush()
        integration = Integration(org_id=org.id, agent_id=agent.id, region="feishu", app_id="x")
        session.add(integration)
    try:
        yield PgLeaseStore(sessions), integration.id
    finally:
        await engine.dispose()


async def test_one_holder_fencing_token_grows_on_each_change_of_hands(
    store: tuple[PgLeaseStore, str],
) -> None:
    leases, bot = store
    first = await leases.acquire(bot, "a", TTL)
    assert first is not None and first.token == 1
    assert await leases.acquire(bot, "b", TTL) is None  # a's lease still holds
    renewed = await leases.acquire(bot, "a", TTL)
    assert renewed is not None and renewed.token == 1  # renewal keeps the token
    assert await leases.renew([bot], "a", TTL) == {bot}
    assert await leases.renew([bot], "b", TTL) == set()

    await asyncio.sleep(TTL + 0.2)  # a stops renewing
    assert await leases.renew([bot], "a", TTL) == set()  # lapsed: only a fresh acquire
    taken = await leases.acquire(bot, "b", TTL)
    assert taken is not None and taken.token == 2 and taken.previous_owner == "a"
    # The former holder's stale token can neither renew nor release.
    assert await leases.release(bot, "a", 1) is False
    assert await leases.acquire(bot, "a", TTL) is None

    assert await leases.release(bot, "b", 2) is True  # a hand-over: free at once
    back = await leases.acquire(bot, "a", TTL)
    assert back is not None and back.token == 3


def test_rendezvous_spreads_and_moves_only_what_it_must() -> None:
    bots = [f"bot{i}" for i in range(300)]
    two = {b: hrw.owner(b, ["a", "b"]) for b in bots}
    assert min(Counter(two.values()).values()) > 100
    three = {b: hrw.owner(b, ["a", "b", "c"]) for b in bots}
    moved = [b for b in bots if two[b] != three[b]]
    assert all(three[b] == "c" for b in moved)  # only bots won by the newcomer move
    assert hrw.owner("bot1", []) is None
