"""The bot-lease lifecycle as a hypothesis state machine, against a real PostgreSQL.

Several instances acquire, renew, release and die while the database clock moves on; a dead
instance's bots are taken over by the rendezvous winner among the live ones. A dead instance
is a zombie, not a corpse: it may still call the store with what it last knew (a paused VM
that wakes up), and the store must refuse it.

The store is async and hypothesis state machines are sync: the test owns one event loop
(`asyncio.Runner`) for its whole run, creates the engine on it, and every rule drives the real
`PgLeaseStore` through `runner.run(...)`.

Time is the database's: "the clock advances by s" is done by moving `bot_leases.expires_at`
and `instances.heartbeat_at` back by s, which is the same thing to every `now()` comparison.
It moves in whole ticks of 10 s while one example lasts well under a second of real time, so
a lease is either clearly valid (≥ 10 s left) or expired: never a race with the real clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.config import normalize_database_url
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Agent, Integration, Organization
from rudder.scale import hrw, instances, leases
from rudder.scale.leases import PgLeaseStore
from rudder.scale.schema import upgrade_serialized

pytestmark = pytest.mark.postgres

TICK_S = 10
TTL_S = 6 * TICK_S
DEAD_S = 3 * TICK_S
INSTANCES = ("i0", "i1", "i2", "i3")
BOTS = 3

T = TypeVar("T")


@dataclass(slots=True)
class _Rig:
    runner: asyncio.Runner
    sessions: async_sessionmaker[AsyncSession]
    store: PgLeaseStore
    bots: list[str]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)


@dataclass(slots=True)
class _Lease:
    """What the model expects of one bot's row."""

    owner: str
    token: int
    left_s: int  # validity left on the database clock; ≤ 0 is expired

    @property
    def valid(self) -> bool:
        return self.left_s > 0


instance_ids = st.sampled_from(INSTANCES)
bot_indexes = st.integers(min_value=0, max_value=BOTS - 1)


class LeaseMachine(RuleBasedStateMachine):
    rig: ClassVar[_Rig | None] = None

    def __init__(self) -> None:
        super().__init__()
        assert self.rig is not None
        self.r: _Rig = self.rig
        self.r.run(self._reset())
        self.leases: dict[str, _Lease] = {}
        self.granted: dict[str, list[int]] = {bot: [] for bot in self.r.bots}
        self.known: dict[tuple[str, str], int] = {}  # (instance, bot): last token it was granted
        self.heartbeat_age: dict[str, int] = {}  # instances that ever heartbeated
        self.dead: set[str] = set()
        self.members: list[str] = []
        self.assignment: dict[str, str | None] = {bot: None for bot in self.r.bots}

    async def _reset(self) -> None:
        async with self.r.sessions() as session, session.begin():
            await session.execute(text("DELETE FROM bot_leases"))
            await session.execute(text("DELETE FROM instances"))

    async def _rows(self) -> dict[str, tuple[str, int, datetime, bool]]:
        async with self.r.sessions() as session:
            return {
                row.integration_id: (row.owner, row.token, row.expires_at, row.valid)
                for row in await leases.listing(session)
            }

    def _acquire(self, inst: str, bot: str) -> None:
        before = self.leases.get(bot)
        grant = self.r.run(self.r.store.acquire(bot, inst, TTL_S))
        if before is not None and before.valid and before.owner != inst:
            assert grant is None, f"{inst} took {bot} from {before.owner}'s valid lease"
            return
        assert grant is not None, f"{inst} was refused {bot}, free or its own"
        if before is not None and before.valid:  # our own lease: renewed, same token
            assert grant.token == before.token
            assert grant.previous_owner is None
        else:  # a change of hands (or our own lapsed lease taken anew): a new token
            history = self.granted[bot]
            assert not history or grant.token > history[-1], (history, grant.token)
            history.append(grant.token)
            expected_previous = before.owner if before and before.owner != inst else None
            assert grant.previous_owner == expected_previous
        self.leases[bot] = _Lease(inst, grant.token, TTL_S)
        self.known[(inst, bot)] = grant.token

    def _release(self, inst: str, bot: str, token: int) -> None:
        before_row = self.r.run(self._rows()).get(bot)
        released = self.r.run(self.r.store.release(bot, inst, token))
        lease = self.leases.get(bot)
        mine = lease is not None and lease.owner == inst and lease.token == token and lease.valid
        assert released == mine, (inst, token, lease)
        if released:
            assert lease is not None
            lease.left_s = 0  # free at once
        else:
            assert self.r.run(self._rows()).get(bot) == before_row, "a refused release wrote"

    # -- rules -----------------------------------------------------------------------------------

    @initialize(insts=st.sets(instance_ids, min_size=2))
    def start(self, insts: set[str]) -> None:
        self.heartbeat(insts)

    @rule(insts=st.sets(instance_ids, min_size=1))
    def heartbeat(self, insts: set[str]) -> None:
        """These instances join, or stay alive (unless dead)."""
        for inst in sorted(insts - self.dead):
            self.r.run(instances.heartbeat(self.r.sessions, inst))
            self.heartbeat_age[inst] = 0

    @precondition(lambda self: len(self.dead) < len(INSTANCES) - 1)
    @rule(inst=instance_ids)
    def die(self, inst: str) -> None:
        """It stops heartbeating for good (kill -9, or a pause longer than any lease)."""
        self.dead.add(inst)

    @rule(inst=instance_ids, bot=bot_indexes)
    def acquire(self, inst: str, bot: int) -> None:
        self._acquire(inst, self.r.bots[bot])

    @rule(inst=instance_ids, bots=st.sets(bot_indexes))
    def renew(self, inst: str, bots: set[int]) -> None:
        ids = [self.r.bots[i] for i in sorted(bots)]
        renewed = self.r.run(self.r.store.renew(ids, inst, TTL_S))
        expected = set()
        for bot in ids:
            lease = self.leases.get(bot)
            if lease is not None and lease.owner == inst and lease.valid:
                expected.add(bot)
                lease.left_s = TTL_S
        assert renewed == expected

    @rule(inst=instance_ids, bot=bot_indexes)
    def release_what_it_knows(self, inst: str, bot: int) -> None:
        """With the last token it was granted: its own, or stale if the lease changed hands."""
        token = self.known.get((inst, self.r.bots[bot]))
        if token is not None:
            self._release(inst, self.r.bots[bot], token)

    @rule(inst=instance_ids, bot=bot_indexes, offset=st.integers(min_value=-2, max_value=1))
    def release_near_the_current_token(self, inst: str, bot: int, offset: int) -> None:
        lease = self.leases.get(self.r.bots[bot])
        token = (lease.token if lease is not None else 1) + offset
        self._release(inst, self.r.bots[bot], token)

    @precondition(lambda self: any(not lease.valid for lease in self.leases.values()))
    @rule()
    def lapsed_holders_wake_up(self) -> None:
        """Each holder whose lease ran out tries to go on with it, as a paused process would."""
        for bot, lease in list(self.leases.items()):
            if not lease.valid:
                assert self.r.run(self.r.store.renew([bot], lease.owner, TTL_S)) == set()
                self._release(lease.owner, bot, lease.token)

    @rule(ticks=st.sampled_from([1, 2, 3, 6, 7]))
    def clock_advances(self, ticks: int) -> None:
        s = ticks * TICK_S

        async def shift() -> None:
            async with self.r.sessions() as session, session.begin():
                await session.execute(
                    text(
                        "UPDATE bot_leases SET expires_at = expires_at - make_interval(secs => :s)"
                    ),
                    {"s": s},
                )
                await session.execute(
                    text(
                        "UPDATE instances SET heartbeat_at = heartbeat_at - make_interval(secs => :s)"
                    ),
                    {"s": s},
                )

        self.r.run(shift())
        for lease in self.leases.values():
            lease.left_s -= s
        for inst in self.heartbeat_age:
            self.heartbeat_age[inst] += s

    @rule()
    def balancing_round(self) -> None:
        """What every live instance's coordinator does: heartbeat; then the rendezvous winner
        among the live instances takes each bot, and a live holder that lost it hands it over
        first."""
        self.heartbeat({i for i in self.heartbeat_age if i not in self.dead})
        live = self.r.run(instances.alive(self.r.sessions, DEAD_S))
        assert sorted(live) == sorted(i for i, age in self.heartbeat_age.items() if age < DEAD_S)
        assignment = {bot: hrw.owner(bot, live) for bot in self.r.bots}
        for bot, new in assignment.items():
            old = self.assignment[bot]
            if old is not None and old in live and new in self.members:
                assert new == old, f"{bot} moved from {old} to {new}, both there before and after"
        self.members, self.assignment = live, assignment
        for bot, winner in assignment.items():
            lease = self.leases.get(bot)
            if lease is not None and lease.valid and lease.owner in live and lease.owner != winner:
                self._release(lease.owner, bot, lease.token)
            if winner is not None:
                self._acquire(winner, bot)

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def at_most_one_valid_lease_per_bot(self) -> None:
        async def doubled() -> list[str]:
            async with self.r.sessions() as session:
                rows = await session.scalars(
                    text(
                        "SELECT integration_id FROM bot_leases WHERE expires_at > now() "
                        "GROUP BY integration_id HAVING count(*) > 1"
                    )
                )
                return list(rows)

        assert self.r.run(doubled()) == []

    @invariant()
    def database_matches_the_model(self) -> None:
        rows = self.r.run(self._rows())
        assert sorted(rows) == sorted(self.leases)
        for bot, (owner, token, _expires, valid) in rows.items():
            lease = self.leases[bot]
            assert (owner, token, valid) == (lease.owner, lease.token, lease.valid), bot

    @invariant()
    def rendezvous_ignores_order(self) -> None:
        for bot in self.r.bots:
            expected = self.assignment[bot]
            assert hrw.owner(bot, list(reversed(self.members))) == expected
            assert hrw.owner(bot, sorted(self.members, key=lambda m: m[::-1])) == expected


@pytest.fixture
def rig(fresh_database: str) -> Iterator[_Rig]:
    with asyncio.Runner() as runner:
        engine = create_engine(normalize_database_url(fresh_database))

        async def setup() -> list[str]:
            await upgrade_serialized(engine)
            async with session_factory(engine)() as session, session.begin():
                org = Organization(name="O", slug="o")
                session.add(org)
                await session.flush()
                agents = [
                    Agent(org_id=org.id, name=f"A{i}", runtime_type="process", runtime_config={})
                    for i in range(BOTS)
                ]
                session.add_all(agents)
                await session.flush()
                bots = [  # one bot per agent
                    Integration(
                        org_id=org.id, agent_id=agent.id, region="feishu", app_id=agent.name
                    )
                    for agent in agents
                ]
                session.add_all(bots)
            return [bot.id for bot in bots]

        bots = runner.run(setup())
        sessions = session_factory(engine)
        try:
            yield _Rig(runner, sessions, PgLeaseStore(sessions), bots)
        finally:
            runner.run(engine.dispose())


# A pass takes 10–30 s; shrinking a failure to its shortest story replays it many times more.
@pytest.mark.timeout(300)
def test_lease_state_machine(rig: _Rig) -> None:
    LeaseMachine.rig = rig
    try:
        run_state_machine_as_test(
            LeaseMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        LeaseMachine.rig = None
