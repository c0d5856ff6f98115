"""An agent's Integrations tab: Connect with Feishu CN / Lark Global, live setup status, health.

The live part is one panel fragment that re-renders itself every second while a setup is pending
(htmx polling), so the page goes pending → connected without a reload and without a socket.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.api.deps import Actor, ActorDep, ServicesDep, SessionDep
from rudder.api.routes_feishu import ManualIn
from rudder.db.models import ActivityLog, Agent, InboundEvent, Integration, SetupSession
from rudder.domain.errors import DomainError
from rudder.feishu import connect as connecting
from rudder.feishu import setup as setups
from rudder.feishu.errors import FeishuError
from rudder.feishu.regions import Region, parse_region
from rudder.feishu.supervisor import connection_state
from rudder.services import Services
from rudder.web.lookups import find_agent
from rudder.web.pages_chat_policy import groups_context
from rudder.web.pages_connect import short_setup_link
from rudder.web.qr import qr_svg
from rudder.web.templating import fragment, not_found, render, shell

router = APIRouter(include_in_schema=False)

EVENTS_SHOWN = 10
REGIONS = [(r.value, r.label) for r in Region]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _latest_setup(session: AsyncSession, agent_id: str) -> SetupSession | None:
    return await session.scalar(
        select(SetupSession)
        .where(SetupSession.agent_id == agent_id)
        .order_by(SetupSession.created_at.desc())
        .limit(1)
    )


async def _panel_context(
    services: Services,
    session: AsyncSession,
    agent: Agent,
    setup: SetupSession | None,
    error: str | None = None,
) -> dict[str, Any]:
    integration = await connecting.integration_for_agent(session, agent.id)
    connected = integration is not None and integration.status != "disconnected"
    events: list[InboundEvent] = []
    if integration is not None:
        events = list(
            await session.scalars(
                select(InboundEvent)
                .where(InboundEvent.integration_id == integration.id)
                .order_by(InboundEvent.received_at.desc())
                .limit(EVENTS_SHOWN)
            )
        )
    product = Region(integration.region).label if integration and integration.region else ""
    setup_product = Region(setup.region).label if setup else ""
    other_region = (
        (Region.LARK if setup.region == Region.FEISHU.value else Region.FEISHU) if setup else None
    )
    return {
        "agent": agent,
        "integration": integration if connected else None,
        "product": product,
        "webhook_url": _webhook_url(services, integration),
        "slash_manual_steps": texts.SLASH_MANUAL_STEPS.format(product=product or "Feishu"),
        "connection": _connection_state(services, integration),
        "events": events,
        # A finished setup is only worth showing when it did not connect (expired, denied, ...).
        "setup": setup if setup and setup.status != "connected" else None,
        "setup_product": setup_product,
        # A setup that ended on the other product (a Lark tenant approved a Feishu CN setup) says so.
        "setup_switched": setups.outcome_text(setup)
        if connected and setup and setup.status == "connected" and setup.region != setup.poll_host
        else None,
        # The link and the QR code go through Rudder's short link, so that one opened after the
        # setup was cancelled or replaced says so instead of approving a code nobody polls.
        "authorize_url": short_setup_link(services.settings.effective_public_url, setup.id)
        if setup
        else None,
        "qr": qr_svg(short_setup_link(services.settings.effective_public_url, setup.id))
        if setup and setup.status == "pending" and setup.verification_url
        else None,
        "switch_region": other_region.value if other_region else None,
        "switch_label": texts.WEB_SETUP_SWITCH.format(product=other_region.label)
        if other_region
        else None,
        "orphans": await _orphan_apps(session, agent.id),
        "regions": REGIONS,
        "error": error,
        "names_hint": _names_hint(services, integration if connected else None, product),
        "speech_hint": await _speech_hint(services, integration if connected else None, product),
    }


ORPHANS_SHOWN = 3


async def _orphan_apps(session: AsyncSession, agent_id: str) -> list[str]:
    """Apps approved from abandoned setups while the agent already had a bot (newest first)."""
    rows = await session.scalars(
        select(ActivityLog)
        .where(ActivityLog.agent_id == agent_id, ActivityLog.action == setups.ORPHAN_ACTION)
        .order_by(ActivityLog.created_at.desc())
        .limit(ORPHANS_SHOWN)
    )
    found = []
    for row in rows:
        try:
            product = Region(str(row.details.get("region"))).label
        except ValueError:
            continue
        found.append(
            texts.SETUP_ORPHAN_APP.format(product=product, app_id=row.details.get("app_id"))
        )
    return found


def _names_hint(services: Services, integration: Integration | None, product: str) -> str | None:
    from rudder.feishu.group_context import GROUP_SCOPE
    from rudder.feishu.names import book

    # The group-history permission has its own line (the Groups section).
    missing = book(services).missing_scopes(integration.id) if integration else []
    missing = [s for s in missing if s != GROUP_SCOPE]
    if not missing:
        return None
    return texts.WEB_NAMES_SCOPE_MISSING.format(scopes=", ".join(missing), product=product)


async def _speech_hint(
    services: Services, integration: Integration | None, product: str
) -> str | None:
    from rudder.media.speech import missing_scope

    scope = await missing_scope(services, integration) if integration else None
    return texts.WEB_SPEECH_SCOPE_MISSING.format(scope=scope, product=product) if scope else None


def _webhook_url(services: Services, integration: Integration | None) -> str | None:
    if integration is None:
        return None
    base = services.settings.effective_public_url
    return f"{base}/api/integrations/feishu/{integration.id}/webhook"


def _connection_state(services: Services, integration: Integration | None) -> dict[str, Any] | None:
    if integration is None:
        return None
    return connection_state(services, integration.id)


def _manual_defaults() -> dict[str, Any]:
    return {"region": "feishu", "app_id": "", "transport": "long_connection"}


@router.get("/agents/{agent_id}/integrations", response_class=HTMLResponse)
async def integrations(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> HTMLResponse:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    return await integrations_page(request, actor, session, services, agent, {})


async def integrations_page(
    request: Request,
    actor: Actor,
    session: AsyncSession,
    services: Services,
    agent: Agent,
    extra: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    frame = await shell(request, session, actor, agent.org_id)
    panel = await _panel_context(services, session, agent, await _latest_setup(session, agent.id))
    integration = panel["integration"]
    context = {
        **panel,
        "tab": "integrations",
        "manual": _manual_defaults(),
        "manual_errors": [],
        "disconnected": await _disconnected_notice(session, agent.id)
        if request.query_params.get("disconnected") and integration is None
        else None,
        **(await groups_context(services, session, integration) if integration is not None else {}),
        **extra,
    }
    return render(
        request, "agents/integrations.html", frame, context, status_code=status_code, nav="agents"
    )


async def _disconnected_notice(session: AsyncSession, agent_id: str) -> str | None:
    """Right after Disconnect: what happened, and that the app itself is still in Feishu."""
    row = await session.scalar(
        select(Integration)
        .where(Integration.agent_id == agent_id, Integration.status == "disconnected")
        .order_by(Integration.created_at.desc())
        .limit(1)
    )
    if row is None:
        return None
    product = Region(row.region).label if row.region else "Feishu"
    return texts.WEB_DISCONNECTED.format(bot=row.bot_name or "The bot", product=product)


@router.get("/agents/{agent_id}/integrations/panel", response_class=HTMLResponse)
async def panel(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> HTMLResponse:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return HTMLResponse(texts.WEB_AGENT_NOT_FOUND, status_code=404)
    context = await _panel_context(services, session, agent, await _latest_setup(session, agent.id))
    return fragment(request, "agents/_feishu_panel.html", context)


@router.post("/agents/{agent_id}/integrations/connect", response_class=HTMLResponse)
async def connect(
    agent_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    region: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    # Owners and admins only: 403 with the reason, before anything is checked or called.
    await connecting.require_bot_manager(services, agent, actor.label)
    error: str | None = None
    try:
        chosen = parse_region(region)
    except ValueError:
        chosen, error = None, texts.WEB_CHOOSE_REGION
    if chosen is not None:
        try:
            await setups.poller(services).start(agent, chosen, actor=actor.label)
        except FeishuError as exc:
            error = setups.start_failed_text(chosen, exc)
    return await _panel_answer(request, services, session, agent, error)


async def _panel_answer(
    request: Request,
    services: Services,
    session: AsyncSession,
    agent: Agent,
    error: str | None,
    *,
    error_status: int = 422,
) -> Response:
    """What a panel action answers: the fresh panel for htmx (with the reason, if any), else a
    redirect to the tab; a plain form that failed with `error_status` 422 gets the panel too."""
    if not _is_htmx(request) and (error is None or error_status != 422):
        return RedirectResponse(f"/agents/{agent.id}/integrations", status_code=303)
    context = await _panel_context(
        services, session, agent, await _latest_setup(session, agent.id), error
    )
    status_code = error_status if error else 200
    return fragment(request, "agents/_feishu_panel.html", context, status_code=status_code)


@router.post("/agents/{agent_id}/integrations/setup/{setup_id}/cancel", response_class=HTMLResponse)
async def cancel_setup(
    agent_id: str,
    setup_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    await connecting.require_bot_manager(services, agent, actor.label)
    setup = await session.get(SetupSession, setup_id)
    if setup is None or setup.agent_id != agent.id:
        return not_found(request, await shell(request, session, actor), texts.WEB_SETUP_NOT_FOUND)
    await session.close()
    error: str | None = None
    try:
        await setups.poller(services).cancel(setup_id, actor=actor.label)
    except DomainError as exc:
        error = exc.detail
    # A setup that ended meanwhile is no failure of the click: the panel shows how it ended.
    return await _panel_answer(request, services, session, agent, error, error_status=200)


@router.post("/agents/{agent_id}/integrations/slash/retry", response_class=HTMLResponse)
async def retry_slash(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    await session.close()
    error: str | None = None
    try:
        await connecting.retry_slash_commands(services, agent, actor=actor.label)
    except DomainError as exc:
        error = exc.detail
    return await _panel_answer(request, services, session, agent, error)


@router.post("/agents/{agent_id}/integrations/disconnect", response_class=HTMLResponse)
async def disconnect(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    # Owners and admins only: 403 with the reason, before anything is checked or called.
    await connecting.require_bot_manager(services, agent, actor.label)
    await connecting.disconnect(services, agent, actor=actor.label)
    return RedirectResponse(f"/agents/{agent.id}/integrations?disconnected=1", status_code=303)


@router.post("/agents/{agent_id}/integrations/manual", response_class=HTMLResponse)
async def connect_manually(
    agent_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    region: Annotated[str, Form(max_length=20)] = "",
    app_id: Annotated[str, Form(max_length=200)] = "",
    app_secret: Annotated[str, Form(max_length=500)] = "",
    transport: Annotated[str, Form(max_length=30)] = "long_connection",
    encrypt_key: Annotated[str, Form(max_length=500)] = "",
    verification_token: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    # Owners and admins only: 403 with the reason, before anything is checked or called.
    await connecting.require_bot_manager(services, agent, actor.label)
    errors: list[str] = []
    try:
        body = ManualIn(
            region=region,
            app_id=app_id.strip(),
            app_secret=app_secret.strip(),
            transport=transport,
            encrypt_key=encrypt_key.strip() or None,
            verification_token=verification_token.strip() or None,
        )
    except ValidationError as exc:
        body = None
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    if body is not None and body.transport == "webhook" and not body.verification_token:
        errors.append(texts.WEB_WEBHOOK_NEEDS_TOKEN)
    if body is not None and not errors:
        creds = connecting.Credentials(
            region=Region(body.region),
            app_id=body.app_id,
            app_secret=body.app_secret,
            transport=body.transport,
            encrypt_key=body.encrypt_key,
            verification_token=body.verification_token,
        )
        try:
            await connecting.connect(services, agent, creds, actor=actor.label, via="manual")
        except connecting.WrongProduct as exc:
            errors.append(exc.detail)
            region = exc.suggested.value  # preselect the product the error names
        except (DomainError, FeishuError) as exc:
            errors.append(exc.detail if isinstance(exc, DomainError) else str(exc))
    if not errors:
        return RedirectResponse(f"/agents/{agent.id}/integrations", status_code=303)
    frame = await shell(request, session, actor, agent.org_id)
    panel_context = await _panel_context(
        services, session, agent, await _latest_setup(session, agent.id)
    )
    context = {
        **panel_context,
        "tab": "integrations",
        "manual": {"region": region, "app_id": app_id, "transport": transport},
        "manual_errors": errors,
    }
    return render(
        request, "agents/integrations.html", frame, context, status_code=422, nav="agents"
    )
