"""What the running application holds: settings, database, secrets key, live hub, run queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rudder.config import Settings
from rudder.domain.secrets import SecretBox
from rudder.live import LiveHub

if TYPE_CHECKING:
    from rudder.executor import InProcessRunQueue


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    live: LiveHub
    runs: InProcessRunQueue
    http: httpx.AsyncClient
    extras: dict[str, Any] = field(default_factory=dict)
