"""Which bots this instance connects: heartbeat, rendezvous hashing, leases, self-fencing.

Every `heartbeat_s` (and at once when a bot is connected or disconnected anywhere):
1. heartbeat in `instances` and read the live ones;
2. for each connected long-connection bot, the rendezvous winner among live instances should
   hold it: the winner takes or renews the lease and connects; anyone else that holds it
   closes its connection first, then releases the lease;
3. a lease taken from a dead instance also takes over the events that instance recorded (and
   acked) but had not processed yet.
A watchdog closes a bot's connection when its last successful renewal is about to run out, so
a process cut off from the database stops receiving before another one may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from rudder.db.models import Integration
from rudder.scale import hrw, instances
from rudder.scale.bus import NotifyBus
from rudder.scale.config import ScaleConfig
from rudder.scale.leases import LeaseStore
from rudder.services import Services

log = logging.getLogger(__name__)

CHANNEL = "rudder_bots"
WATCHDOG_S = 0.2


class Connections(Protocol):
    """What the coordinator drives (the Feishu supervisor)."""

    def has(self, integration_id: str) -> bool: ...

    async def ensure(self, integration_id: str) -> None: ...

    async def stop(self, integration_id: str) -> None: ...


# Routes the events a bot's dead holder recorded and acked but never processed.
EventRecovery = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class Held:
    token: int
    deadline: float  # local monotonic time by which the connection must be closed


class Coordinator:
    def __init__(
        self,
        services: Services,
        store: LeaseStore,
        bus: NotifyBus,
        config: ScaleConfig,
        instance_id: str,
    ) -> None:
        self.services = services
        self.store = store
        self.bus = bus
        self.config = config
        self.instance_id = instance_id
        self.connections: Connections | None = None
        self.recovery: EventRecovery | None = None
        self.held: dict[str, Held] = {}
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._ops: dict[str, asyncio.Task[None]] = {}
        self._closing: set[str] = set()
        self._connects: set[asyncio.Task[None]] = set()
        self._closed = False
        self._recovering = True
        bus.on(CHANNEL, self._on_remote)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, connections: Connections, recovery: EventRecovery, *, cold: bool) -> None:
        """`cold`: no other instance is alive, and the caller recovers every pending event
        itself, so takeovers in the first round must not schedule them a second time."""
        self.connections, self.recovery = connections, recovery
        self._recovering = not cold
        await self.round()
        self._recovering = True
        self._tasks = [
            asyncio.create_task(self._loop(), name="bot-leases"),
            asyncio.create_task(self._renew_loop(), name="bot-lease-renewal"),
            asyncio.create_task(self._watchdog(), name="bot-lease-watchdog"),
        ]

    async def close(self) -> None:
        """Close every connection, then hand the leases back so a peer takes over at once."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        async with self._lock:
            for integration_id in list(self.held):
                self._let_go(integration_id)
        ops = [t for t in self._ops.values() if not t.done()]
        if ops:
            await asyncio.wait(ops, timeout=10)
        with contextlib.suppress(Exception):
            await instances.leave(self.services.sessions, self.instance_id)

    def may_ack(self, integration_id: str) -> bool:
        held = self.held.get(integration_id)
        return held is not None and time.monotonic() < held.deadline

    # -- integration changes (here or on another instance) ----------------------------------------

    async def changed(self, integration_id: str) -> None:
        """A bot was connected, reconnected or disconnected through this instance."""
        self.bus.send(CHANNEL, integration_id)
        await self._restart(integration_id)

    async def _on_remote(self, integration_id: str) -> None:
        from rudder.feishu.bots import forget

        forget(self.services, integration_id)
        await self._restart(integration_id)

    async def _restart(self, integration_id: str) -> None:
        # New credentials or a disconnect: drop the connection; the next round reconnects it
        # (if it is still ours and still connected) or lets the lease go.
        if integration_id in self.held or (
            self.connections is not None and self.connections.has(integration_id)
        ):
            self._connection_op(integration_id, connect=False)
        self._poke.set()

    # -- the round -------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.config.heartbeat_s)
            self._poke.clear()
            try:
                await self.round()
            except Exception as exc:
                # The watchdog fences what we can no longer renew.
                log.warning("lease round failed: %s", exc)

    async def _renew_loop(self) -> None:
        # Apart from the balancing round, and only two short statements, so that a slow
        # round (many bots to take over, a busy database) never costs a lease.
        while not self._closed:
            await asyncio.sleep(self.config.heartbeat_s)
            try:
                await self.renew()
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)

    async def renew(self) -> None:
        me = self.instance_id
        await instances.heartbeat(self.services.sessions, me)
        asked = dict(self.held)
        sent = time.monotonic()
        renewed = await self.store.renew(list(asked), me, self.config.lease_ttl_s)
        for integration_id, held in asked.items():
            if self.held.get(integration_id) is not held:
                continue  # let go or fenced meanwhile
            if integration_id in renewed:
                held.deadline = self._deadline(sent)
            else:
                log.warning("bot %s: lease lost; closing its connection", integration_id)
                self._let_go(integration_id, release=False)

    async def round(self) -> None:
        # Only short statements: opening or closing connections happens in background tasks.
        async with self._lock:
            if self._closed:
                return
            config, me = self.config, self.instance_id
            live = await instances.alive(self.services.sessions, config.dead_after_s)
            if me not in live:
                live.append(me)
            bots = set(await self._bots())
            for integration_id in sorted(bots):
                ours = hrw.owner(integration_id, live) == me
                if ours and integration_id not in self.held:
                    await self._take(integration_id, live)
                elif not ours and integration_id in self.held:
                    log.info("bot %s moves to another instance", integration_id)
                    self._let_go(integration_id)
            for integration_id in [i for i in self.held if i not in bots]:
                self._let_go(integration_id)
            assert self.connections is not None
            for integration_id in self.held:
                if not self.connections.has(integration_id):
                    self._connection_op(integration_id, connect=True)

    def _deadline(self, sent: float) -> float:
        return sent + self.config.lease_ttl_s - self.config.fence_margin_s

    async def _bots(self) -> list[str]:
        async with self.services.sessions() as session:
            rows = await session.scalars(
                select(Integration.id).where(
                    Integration.status == "connected",
                    Integration.transport == "long_connection",
                    Integration.app_id.is_not(None),
                )
            )
            return list(rows)

    async def _take(self, integration_id: str, live: list[str]) -> None:
        if integration_id in self._closing:
            return  # still closing our previous connection of it
        sent = time.monotonic()
        grant = await self.store.acquire(integration_id, self.instance_id, self.config.lease_ttl_s)
        if grant is None:
            return  # still someone else's: a dead peer's lease runs out, a live one hands over
        self.held[integration_id] = Held(grant.token, self._deadline(sent))
        if self._recovering and grant.previous_owner and grant.previous_owner not in live:
            log.warning(
                "took bot %s over from dead instance %s", integration_id, grant.previous_owner
            )
            assert self.recovery is not None
            await self.recovery(integration_id)

    def _let_go(self, integration_id: str, *, release: bool = True) -> None:
        held = self.held.pop(integration_id, None)
        token = held.token if held is not None and release else None
        self._connection_op(integration_id, connect=False, release_token=token)

    def _connection_op(
        self, integration_id: str, *, connect: bool, release_token: int | None = None
    ) -> None:
        """Open or close one bot's connection in the background, one operation at a time per
        bot; a release of the lease happens only after its connection is closed."""
        previous = self._ops.get(integration_id)
        if connect and previous is not None and not previous.done() and previous in self._connects:
            return  # already connecting
        if not connect:
            self._closing.add(integration_id)

        async def op() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            assert self.connections is not None
            try:
                if connect:
                    if integration_id in self.held and not self.connections.has(integration_id):
                        await self.connections.ensure(integration_id)
                    return
                await self.connections.stop(integration_id)
                if release_token is not None:
                    await self.store.release(integration_id, self.instance_id, release_token)
            except Exception as exc:
                log.warning("bot %s: connection change failed: %s", integration_id, exc)
            finally:
                if not connect and self._ops.get(integration_id) is asyncio.current_task():
                    self._closing.discard(integration_id)

        task = asyncio.create_task(op(), name=f"bot-lease-op:{integration_id}")
        self._ops[integration_id] = task
        if connect:
            self._connects.add(task)
            task.add_done_callback(self._connects.discard)

    # -- self-fencing ----------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        while not self._closed:
            await asyncio.sleep(WATCHDOG_S)
            now = time.monotonic()
            for integration_id, held in list(self.held.items()):
                if now >= held.deadline and self.held.get(integration_id) is held:
                    log.warning(
                        "bot %s: lease not renewed in time; closing its connection",
                        integration_id,
                    )
                    self._let_go(integration_id, release=False)
