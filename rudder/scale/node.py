"""This process's part in a PostgreSQL deployment: an instance (`rudder start`) serves the web,
its share of the bots and, by default, runs; a worker (`rudder worker`) only executes runs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.config import Settings
from rudder.domain.secrets import SecretBox
from rudder.live import LiveHub
from rudder.media.config import media_config
from rudder.runtimes.policy import RuntimePolicy
from rudder.scale import instances
from rudder.scale.bus import NotifyBus
from rudder.scale.config import ScaleConfig
from rudder.scale.coordinator import Coordinator
from rudder.scale.fanout import LiveFanout
from rudder.scale.leases import PgLeaseStore
from rudder.scale.runqueue import ProcrastinateRunQueue
from rudder.services import Services


@dataclass
class ScaleNode:
    instance_id: str
    config: ScaleConfig
    bus: NotifyBus
    fanout: LiveFanout
    runs: ProcrastinateRunQueue
    coordinator: Coordinator | None = None

    async def open(self) -> None:
        await self.bus.start()
        await self.runs.open()

    def attach(self, services: Services, *, serve_bots: bool) -> None:
        services.components.node = self
        if serve_bots:
            self.coordinator = Coordinator(
                services, PgLeaseStore(services.sessions), self.bus, self.config, self.instance_id
            )

    async def join(self, sessions: async_sessionmaker[AsyncSession]) -> bool:
        """Heartbeat for the first time; True on a cold start (no other instance alive)."""
        return await instances.join(sessions, self.instance_id, self.config.dead_after_s)

    async def close_bots(self) -> None:
        if self.coordinator is not None:
            await self.coordinator.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.close()


def create(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    live: LiveHub,
    box: SecretBox,
    config: ScaleConfig | None = None,
) -> ScaleNode:
    config = config or ScaleConfig.from_env()
    instance_id = instances.new_instance_id()
    bus = NotifyBus(settings.effective_database_url)
    fanout = LiveFanout(live, bus, sessions, instance_id)
    runs = ProcrastinateRunQueue(
        sessions,
        live,
        box,
        database_url=settings.effective_database_url,
        bus=bus,
        config=config,
    )
    # The operator's runtime policy, for `rudder start` and `rudder worker` alike.
    runs.policy = RuntimePolicy.from_settings(settings)
    runs.media = media_config(settings, sessions)
    return ScaleNode(instance_id, config, bus, fanout, runs)


def node_of(services: Services) -> ScaleNode | None:
    return services.components.node
