"""Connecting an agent's bot: verify the credential, store it encrypted, register commands."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import Agent, Integration, utcnow
from rudder.domain import activity, orgs, secret_store
from rudder.domain.errors import Conflict, Invalid
from rudder.feishu.client import BotClient, BotInfo
from rudder.feishu.errors import COMMAND_EXISTS, FeishuError, FeishuTransportError
from rudder.feishu.regions import Region
from rudder.services import Services

log = logging.getLogger(__name__)

SLASH_COMMANDS = {
    "new": (
        "Start a fresh conversation",
        {"zh_cn": "开启全新会话", "en_us": "Start a fresh conversation"},
    ),
    "stop": (
        "Stop the reply in progress",
        {"zh_cn": "停止当前回复", "en_us": "Stop the reply in progress"},
    ),
}
TRANSPORTS = ("long_connection", "webhook")

IntegrationListener = Callable[[str, str], Awaitable[None]]  # (event, integration_id)


@dataclass(frozen=True, slots=True)
class Credentials:
    region: Region
    app_id: str
    app_secret: str
    transport: str = "long_connection"
    encrypt_key: str | None = None
    verification_token: str | None = None


def bot_client(services: Services, region: Region, app_id: str, app_secret: str) -> BotClient:
    return BotClient(
        services.http,
        region,
        app_id,
        app_secret,
        base_url_override=services.settings.feishu_base_url,
    )


class WrongProduct(Invalid):
    """The credentials are good, on the other product: the form preselects `suggested`."""

    def __init__(self, detail: str, suggested: Region) -> None:
        super().__init__(detail)
        self.suggested = suggested


async def _works_on(services: Services, region: Region, creds: Credentials) -> bool:
    try:
        await bot_client(services, region, creds.app_id, creds.app_secret).tenant_token()
    except FeishuError:
        return False
    return True


async def verify(services: Services, creds: Credentials) -> BotInfo:
    """Mint a token and read the bot: proves the credential and the product (CN vs Global)."""
    client = bot_client(services, creds.region, creds.app_id, creds.app_secret)
    other = Region.LARK if creds.region is Region.FEISHU else Region.FEISHU
    try:
        await client.tenant_token()
    except FeishuError as exc:
        if not isinstance(exc, FeishuTransportError) and await _works_on(services, other, creds):
            raise WrongProduct(
                texts.CREDENTIALS_ON_OTHER_PRODUCT.format(
                    app_id=creds.app_id, product=creds.region.label, other=other.label
                ),
                other,
            ) from None
        raise Invalid(
            texts.CREDENTIALS_UNKNOWN.format(
                product=creds.region.label,
                app_id=creds.app_id,
                detail=exc.msg,
                other=other.label,
            )
        ) from None
    try:
        return await client.bot_info()
    except FeishuError as exc:
        raise Invalid(
            f"{creds.region.label} accepted the app but its bot is unavailable: {exc}"
        ) from None


async def register_slash_commands(client: BotClient) -> dict[str, Any]:
    """Register /new and /stop; when that is not allowed, say how to add them by hand."""
    try:
        existing = {
            str(item.get("command", "")).lstrip("/") for item in await client.list_slash_commands()
        }
        for name, (description, i18n) in SLASH_COMMANDS.items():
            if name in existing:
                continue
            try:
                await client.create_slash_command(name, description, i18n)
            except FeishuError as exc:
                if exc.code != COMMAND_EXISTS:
                    raise
    except FeishuError as exc:
        return {
            "state": "manual",
            "commands": sorted(SLASH_COMMANDS),
            "detail": texts.SLASH_MANUAL_STEPS.format(product=client.region.label),
            "error": str(exc),
        }
    return {"state": "registered", "commands": sorted(SLASH_COMMANDS)}


async def retry_slash_commands(services: Services, agent: Agent, *, actor: str) -> dict[str, Any]:
    """Try registering /new and /stop again (after the permission was granted, say)."""
    await require_bot_manager(services, agent, actor)
    async with services.sessions() as session:
        integration = await integration_for_agent(session, agent.id)
        if integration is None or integration.status == "disconnected":
            raise Invalid(texts.SLASH_RETRY_NOT_CONNECTED)
        integration_id = integration.id
    from rudder.feishu.bots import bot_for  # bots imports this module

    slash = await register_slash_commands(await bot_for(services, integration_id))
    async with services.sessions() as session, session.begin():
        row = await session.get(Integration, integration_id)
        if row is not None:
            row.slash_commands = slash
            activity.record(
                session,
                org_id=row.org_id,
                actor=actor,
                action="feishu.slash_commands_retried",
                entity_type="integration",
                entity_id=row.id,
                details={"state": slash["state"]},
            )
    return slash


async def integration_for_agent(session: AsyncSession, agent_id: str) -> Integration | None:
    return await session.scalar(
        select(Integration).where(
            Integration.agent_id == agent_id, Integration.provider == "feishu"
        )
    )


async def _store(
    services: Services,
    session: AsyncSession,
    org_id: str,
    integration_id: str,
    purpose: str,
    value: str | None,
) -> str | None:
    if not value:
        return None
    row = await secret_store.put_secret(
        session, services.box, org_id, f"feishu/{integration_id}/{purpose}", value
    )
    return row.id


async def connect(
    services: Services, agent: Agent, creds: Credentials, *, actor: str, via: str
) -> Integration:
    await require_bot_manager(services, agent, actor)
    if creds.transport not in TRANSPORTS:
        raise Invalid(f"transport: must be one of {', '.join(TRANSPORTS)}")
    bot = await verify(services, creds)
    slash = await register_slash_commands(
        bot_client(services, creds.region, creds.app_id, creds.app_secret)
    )
    async with services.sessions() as session, session.begin():
        holder = await session.scalar(select(Integration).where(Integration.app_id == creds.app_id))
        if holder is not None and holder.agent_id != agent.id:
            if holder.status != "disconnected":
                other = await session.get(Agent, holder.agent_id)
                raise Conflict(
                    texts.APP_ALREADY_CONNECTED.format(
                        app_id=creds.app_id, agent=other.name if other else "?"
                    )
                )
            holder.app_id = None  # an old, disconnected link of this app; history stays with it
            await session.flush()
        integration = await integration_for_agent(session, agent.id)
        if integration is None:
            integration = Integration(
                org_id=agent.org_id, agent_id=agent.id, provider="feishu", region=creds.region.value
            )
            session.add(integration)
            await session.flush()
        for secret_id in (
            integration.app_secret_id,
            integration.encrypt_key_secret_id,
            integration.verification_token_secret_id,
        ):
            await secret_store.delete_secret(session, secret_id)
        await session.flush()
        integration.region = creds.region.value
        integration.app_id = creds.app_id
        integration.app_secret_id = await _store(
            services, session, agent.org_id, integration.id, "app_secret", creds.app_secret
        )
        integration.encrypt_key_secret_id = await _store(
            services, session, agent.org_id, integration.id, "encrypt_key", creds.encrypt_key
        )
        integration.verification_token_secret_id = await _store(
            services,
            session,
            agent.org_id,
            integration.id,
            "verification_token",
            creds.verification_token,
        )
        integration.transport = creds.transport
        integration.bot_open_id = bot.open_id
        integration.bot_name = bot.app_name or agent.name
        integration.status = "connected"
        integration.connected_at = utcnow()
        integration.last_error = None
        integration.slash_commands = slash
        activity.record(
            session,
            org_id=agent.org_id,
            actor=actor,
            action="feishu.connected",
            entity_type="integration",
            entity_id=integration.id,
            details={"region": creds.region.value, "app_id": creds.app_id, "via": via},
        )
    await notify(services, "connected", integration.id)
    return integration


async def require_bot_manager(services: Services, agent: Agent, actor: str) -> None:
    """Connecting, reconnecting and disconnecting a bot are for the organization's owners and
    admins (Forbidden for members and agent tokens): the bot speaks for the whole organization."""
    async with services.sessions() as session:
        await orgs.require_manager(session, actor, agent.org_id, texts.BOT_ADMINS_ONLY)


async def disconnect(services: Services, agent: Agent, *, actor: str) -> Integration | None:
    await require_bot_manager(services, agent, actor)
    async with services.sessions() as session, session.begin():
        integration = await integration_for_agent(session, agent.id)
        if integration is None:
            return None
        for secret_id in (
            integration.app_secret_id,
            integration.encrypt_key_secret_id,
            integration.verification_token_secret_id,
        ):
            await secret_store.delete_secret(session, secret_id)
        integration.app_secret_id = integration.encrypt_key_secret_id = (
            integration.verification_token_secret_id
        ) = None
        integration.status = "disconnected"
        integration.connected_at = None
        activity.record(
            session,
            org_id=agent.org_id,
            actor=actor,
            action="feishu.disconnected",
            entity_type="integration",
            entity_id=integration.id,
        )
    await notify(services, "disconnected", integration.id)
    return integration


def listeners(services: Services) -> list[IntegrationListener]:
    found = services.components.integration_listeners
    return found


async def notify(services: Services, event: str, integration_id: str) -> None:
    for listener in listeners(services):
        try:
            await listener(event, integration_id)
        except Exception:
            log.exception("integration listener failed on %s", event)


async def app_secret(services: Services, integration: Integration) -> str:
    if integration.app_secret_id is None:
        raise Invalid("this integration has no stored app secret; connect it again")
    async with services.sessions() as session:
        return await secret_store.get_secret_by_id(session, services.box, integration.app_secret_id)
