"""One `BotClient` per connected integration, cached so its tenant token is reused."""

from __future__ import annotations

from rudder.db.models import Integration
from rudder.domain.errors import NotFound
from rudder.feishu.client import BotClient
from rudder.feishu.connect import app_secret, bot_client
from rudder.feishu.regions import Region
from rudder.services import Services


async def bot_for(services: Services, integration_id: str) -> BotClient:
    cache = services.components.bot_clients
    async with services.sessions() as session:
        integration = await session.get(Integration, integration_id)
    if integration is None or not integration.app_id:
        raise NotFound("integration not found")
    cached = cache.get(integration_id)
    if (
        cached is not None
        and cached.app_id == integration.app_id
        and cached.region.value == integration.region
    ):
        return cached
    client = bot_client(
        services,
        Region(integration.region),
        integration.app_id,
        await app_secret(services, integration),
    )
    cache[integration_id] = client
    return client


def forget(services: Services, integration_id: str) -> None:
    services.components.bot_clients.pop(integration_id, None)
