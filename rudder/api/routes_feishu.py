"""Feishu / Lark: connect (setup sessions or manual credentials), status, disconnect."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from rudder import texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, require_org
from rudder.api.schemas import TextInput, error_responses
from rudder.db.models import Integration
from rudder.domain.errors import Conflict, Invalid, NotFound
from rudder.feishu import connect as connecting
from rudder.feishu import setup as setups
from rudder.feishu.errors import FeishuError
from rudder.feishu.regions import Region
from rudder.feishu.supervisor import connection_state

router = APIRouter(prefix="/api", tags=["feishu"])


class SetupIn(TextInput):
    region: Literal["feishu", "lark"]
    reconnect: bool = False  # replace a connected bot of this agent


class SetupOut(BaseModel):
    setup_id: str
    agent_id: str
    region: str  # the product chosen when the setup started
    connected_region: str | None  # the product the app ended on, once connected
    outcome: str | None  # that, in words for people
    status: str
    verification_url: str | None
    user_code: str | None
    expires_at: datetime
    error: str | None
    finished_at: datetime | None


class ManualIn(TextInput):
    region: Literal["feishu", "lark"]
    app_id: str = Field(min_length=1, max_length=64, pattern=r"^cli_[0-9A-Za-z]+$")
    app_secret: str = Field(min_length=1, max_length=256)
    transport: Literal["long_connection", "webhook"] = "long_connection"
    reconnect: bool = False
    encrypt_key: str | None = Field(default=None, max_length=256)
    verification_token: str | None = Field(default=None, max_length=256)


class IntegrationOut(BaseModel):
    id: str | None
    agent_id: str
    provider: str = "feishu"
    status: str
    region: str | None
    app_id: str | None
    bot_name: str | None
    bot_open_id: str | None
    transport: str | None
    reply_style: str | None
    connected_at: datetime | None
    last_event_at: datetime | None
    last_error: str | None
    slash_commands: dict[str, Any]
    webhook_url: str | None
    connection: dict[str, Any] | None = None


def _integration_out(services: Any, agent_id: str, row: Integration | None) -> IntegrationOut:
    if row is None:
        return IntegrationOut(
            id=None,
            agent_id=agent_id,
            status="disconnected",
            region=None,
            app_id=None,
            bot_name=None,
            bot_open_id=None,
            transport=None,
            reply_style=None,
            connected_at=None,
            last_event_at=None,
            last_error=None,
            slash_commands={},
            webhook_url=None,
        )
    return IntegrationOut(
        id=row.id,
        agent_id=row.agent_id,
        status=row.status,
        region=row.region,
        app_id=row.app_id,
        bot_name=row.bot_name,
        bot_open_id=row.bot_open_id,
        transport=row.transport,
        reply_style=row.reply_style,
        connected_at=row.connected_at,
        last_event_at=row.last_event_at,
        last_error=row.last_error,
        slash_commands=row.slash_commands or {},
        webhook_url=f"{services.settings.effective_public_url}/api/integrations/feishu/{row.id}/webhook",
        connection=connection_state(services, row.id),
    )


async def _refuse_if_connected(session: Any, agent_id: str, reconnect: bool) -> None:
    current = await connecting.integration_for_agent(session, agent_id)
    if current is not None and current.status in ("connected", "error") and not reconnect:
        raise Conflict(
            texts.ALREADY_CONNECTED.format(
                product=Region(current.region).label, bot=current.bot_name or current.app_id
            )
        )


@router.post(
    "/agents/{agent_id}/integrations/feishu/setup",
    response_model=SetupOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 409),
)
async def start_setup(
    agent_id: str, body: SetupIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> SetupOut:
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    await _refuse_if_connected(session, agent.id, body.reconnect)
    await session.close()
    try:
        row = await setups.poller(services).start(agent, Region(body.region), actor=actor.label)
    except FeishuError as exc:
        raise Invalid(setups.start_failed_text(Region(body.region), exc)) from None
    return SetupOut(**setups.setup_view(row))


@router.post(
    "/integration-setups/{setup_id}/cancel",
    response_model=SetupOut,
    responses=error_responses(403, 409),
)
async def cancel_setup(
    setup_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> SetupOut:
    """Cancel a pending setup. Its code is still watched until it expires: an approval that
    comes anyway connects the app if the agent has no bot, or is named for deletion."""
    row = await setups.get_setup(services, setup_id)
    try:
        await require_org(session, actor, row.org_id)
    except NotFound:
        raise NotFound("setup session not found") from None
    agent = await load_agent(session, actor, row.agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    await session.close()
    ended = await setups.poller(services).cancel(setup_id, actor=actor.label)
    return SetupOut(**setups.setup_view(ended))


@router.get("/integration-setups/{setup_id}", response_model=SetupOut)
async def get_setup(
    setup_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> SetupOut:
    row = await setups.get_setup(services, setup_id)
    try:
        await require_org(session, actor, row.org_id)
    except NotFound:
        raise NotFound("setup session not found") from None
    return SetupOut(**setups.setup_view(row))


@router.get("/agents/{agent_id}/integrations/feishu", response_model=IntegrationOut)
async def get_integration(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> IntegrationOut:
    agent = await load_agent(session, actor, agent_id)
    return _integration_out(
        services, agent.id, await connecting.integration_for_agent(session, agent.id)
    )


@router.post(
    "/agents/{agent_id}/integrations/feishu/manual",
    response_model=IntegrationOut,
    responses=error_responses(403, 409),
)
async def connect_manually(
    agent_id: str, body: ManualIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> IntegrationOut:
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    await _refuse_if_connected(session, agent.id, body.reconnect)
    await session.close()
    if body.transport == "webhook" and not body.verification_token:
        raise Invalid(
            "verification_token: required for the webhook transport (Feishu console → Events & callbacks)"
        )
    creds = connecting.Credentials(
        region=Region(body.region),
        app_id=body.app_id,
        app_secret=body.app_secret,
        transport=body.transport,
        encrypt_key=body.encrypt_key,
        verification_token=body.verification_token,
    )
    row = await connecting.connect(services, agent, creds, actor=actor.label, via="manual")
    return _integration_out(services, agent.id, row)


@router.delete(
    "/agents/{agent_id}/integrations/feishu",
    response_model=IntegrationOut,
    responses=error_responses(403),
)
async def disconnect(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep, response: Response
) -> IntegrationOut:
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    await session.close()
    row = await connecting.disconnect(services, agent, actor=actor.label)
    if row is None:
        raise NotFound("this agent has no Feishu integration")
    return _integration_out(services, agent.id, row)
