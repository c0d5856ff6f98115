"""What the running application holds: settings, database, secrets key, live hub, run queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rudder.config import Settings
from rudder.domain.secrets import SecretBox
from rudder.live import LiveHub

if TYPE_CHECKING:
    from rudder.executor import InProcessRunQueue
    from rudder.feishu.client import BotClient
    from rudder.feishu.connect import IntegrationListener
    from rudder.feishu.inbound import InboundPipeline
    from rudder.feishu.names import NameBook
    from rudder.feishu.outbound import Outbound
    from rudder.feishu.setup import SetupPoller
    from rudder.feishu.supervisor import Supervisor
    from rudder.scale.node import ScaleNode
    from rudder.security import SessionRegistry, Throttles
    from rudder.sweeper import Sweeper


@dataclass
class Components:
    """The long-lived parts of a running Rudder, each in its own typed slot.

    A slot is filled by its module's accessor the first time it is needed (``pipeline``,
    ``outbound_of``, ``poller``, …) or by ``start_services``; the app's lifespan stops the
    ones that run tasks (``rudder.server.stop_services``). Nothing else is kept on Services.
    """

    inbound: InboundPipeline | None = None  # recording and routing of Feishu events
    outbound: Outbound | None = None  # replies and notices through the outbox
    supervisor: Supervisor | None = None  # one long connection per connected bot
    setup_poller: SetupPoller | None = None  # Connect's setup sessions
    sweeper: Sweeper | None = None  # re-drives stranded work
    budget_sweeper: asyncio.Task[None] | None = None  # a new month resumes held agents
    media_retention: asyncio.Task[None] | None = None  # removes old attachments' bytes
    node: ScaleNode | None = None  # PostgreSQL scale-out: leases, bus, shared run queue
    names: NameBook | None = None  # Feishu users' and chats' names, cached
    bot_clients: dict[str, BotClient] = field(default_factory=dict)  # by integration id
    integration_listeners: list[IntegrationListener] = field(default_factory=list)
    login_throttles: Throttles | None = None
    auth_sessions: SessionRegistry | None = None
    local_owner_id: str | None = None  # local mode's one member, once looked up
    nontext_notices: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    live: LiveHub
    runs: InProcessRunQueue
    http: httpx.AsyncClient
    components: Components = field(default_factory=Components)
