"""Feishu inbound: the webhook endpoint, the activity log, and member bindings."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from rudder import texts
from rudder.api.deps import (
    ActorDep,
    ServicesDep,
    SessionDep,
    current_actor,
    load_agent,
    require_org,
)
from rudder.db.models import InboundEvent, Integration, User
from rudder.domain import orgs, secret_store
from rudder.domain.errors import DomainError, Invalid, NotFound, Unauthorized
from rudder.feishu import bindings, card_actions
from rudder.feishu import identities as feishu_identities
from rudder.feishu.connect import integration_for_agent
from rudder.feishu.events import EventError, parse_event
from rudder.feishu.inbound import pipeline
from rudder.feishu.outbound import spawn_private_notice
from rudder.feishu.webhook_codec import WebhookChallenge, WebhookRejected, parse_webhook
from rudder.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["feishu"])
pages = APIRouter(include_in_schema=False)

# Feishu re-pushes a failed delivery for hours (15 s … 6 h); whether a re-push carries a fresh
# timestamp is undocumented, so the replay window is wide and only for signed requests.
WEBHOOK_MAX_AGE_S = 8 * 3600


class ActivityOut(BaseModel):
    event_id: str
    message_id: str | None
    event_type: str
    chat_id: str | None
    chat_type: str | None
    sender_open_id: str | None
    outcome: str
    reason: str | None
    received_at: datetime


class IdentityOut(BaseModel):
    integration_id: str
    agent_id: str
    agent_name: str
    open_id: str
    union_id: str | None
    display_name: str | None
    bound: bool
    binding_id: str | None
    user_id: str | None
    user_name: str | None
    last_seen_at: datetime | None


class UserBindingIn(BaseModel):
    integration_id: str = Field(min_length=1, max_length=64)
    open_id: str = Field(min_length=1, max_length=100)
    user_id: str = Field(min_length=1, max_length=64)


class UserBindingOut(BaseModel):
    id: str
    integration_id: str
    open_id: str
    user_id: str


@router.post("/integrations/feishu/{integration_id}/webhook", responses={401: {}, 404: {}, 413: {}})
async def webhook(integration_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    raw = await request.body()
    async with services.sessions() as session:
        integration = await session.get(Integration, integration_id)
        if integration is None or integration.status == "disconnected":
            log.info("webhook for unknown integration %s refused", integration_id)
            raise NotFound("unknown integration")
        app_id = integration.app_id
        keys = {}
        for name, secret_id in (
            ("encrypt_key", integration.encrypt_key_secret_id),
            ("verification_token", integration.verification_token_secret_id),
        ):
            keys[name] = (
                await secret_store.get_secret_by_id(session, services.box, secret_id)
                if secret_id
                else None
            )
    result = parse_webhook(
        raw,
        request.headers,
        encrypt_key=keys["encrypt_key"],
        verification_token=keys["verification_token"],
        max_age_s=WEBHOOK_MAX_AGE_S,
        now=time.time(),
    )
    if isinstance(result, WebhookChallenge):
        return JSONResponse(result.response_body())
    if isinstance(result, WebhookRejected):
        log.warning(
            "webhook for integration %s refused (%d): %s",
            integration_id,
            result.status,
            result.reason,
        )
        return JSONResponse(
            {
                "error": "refused",
                "detail": result.reason if result.status != 401 else "not authentic",
            },
            status_code=result.status,
        )
    try:
        event = parse_event(result.event)
    except EventError as exc:
        log.warning("webhook for integration %s: unreadable event acked: %s", integration_id, exc)
        return JSONResponse({"msg": "ignored"})
    if event.app_id and event.app_id != app_id:
        # Signed with this endpoint's key but naming another app: not this bot's event.
        log.warning(
            "webhook for integration %s refused (401): event names app %s, not %s",
            integration_id,
            event.app_id,
            app_id,
        )
        return JSONResponse({"error": "refused", "detail": "not authentic"}, status_code=401)
    if card_actions.is_callback(event):
        # A button press: the answer (toast) is the HTTP 200 body, within Feishu's 3 s.
        return JSONResponse(await card_actions.answer(services, integration_id, event))
    try:
        await pipeline(services).receive(integration_id, event)
    except Exception:
        log.exception("webhook event could not be recorded; Feishu will re-push it")
        return JSONResponse({"error": "internal", "detail": "not recorded"}, status_code=500)
    return JSONResponse({"msg": "success"})


@router.get("/agents/{agent_id}/integrations/feishu/activity", response_model=list[ActivityOut])
async def activity(
    agent_id: str,
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ActivityOut]:
    agent = await load_agent(session, actor, agent_id)
    integration = await integration_for_agent(session, agent.id)
    if integration is None:
        return []
    rows = await session.scalars(
        select(InboundEvent)
        .where(InboundEvent.integration_id == integration.id)
        .order_by(InboundEvent.received_at.desc())
        .limit(limit)
    )
    return [
        ActivityOut(
            event_id=r.event_id,
            message_id=r.message_id,
            event_type=r.event_type,
            chat_id=r.chat_id,
            chat_type=r.chat_type,
            sender_open_id=r.sender_open_id,
            outcome=r.outcome,
            reason=r.reason,
            received_at=r.received_at,
        )
        for r in rows
    ]


@router.get("/orgs/{org_id}/feishu-identities", response_model=list[IdentityOut])
async def identities(org_id: str, actor: ActorDep, session: SessionDep) -> list[IdentityOut]:
    """Feishu users seen by this organization's bots: unbound first, then bound, newest first."""
    await require_org(session, actor, org_id)
    return [
        IdentityOut(
            integration_id=i.integration_id,
            agent_id=i.agent_id,
            agent_name=i.agent_name,
            open_id=i.open_id,
            union_id=i.union_id,
            display_name=i.display_name,
            bound=i.binding_id is not None,
            binding_id=i.binding_id,
            user_id=i.user_id,
            user_name=i.user_name,
            last_seen_at=i.last_seen_at,
        )
        for i in await feishu_identities.identities(session, org_id)
    ]


@router.post(
    "/orgs/{org_id}/feishu-user-bindings", response_model=UserBindingOut, responses={403: {}}
)
async def bind_user(
    org_id: str, body: UserBindingIn, actor: ActorDep, session: SessionDep
) -> UserBindingOut:
    await require_org(session, actor, org_id)
    await feishu_identities.require_admin(session, actor.user_id, org_id)
    integration = await session.get(Integration, body.integration_id)
    if integration is None or integration.org_id != org_id:
        raise NotFound("integration not found")
    row = await bindings.bind(
        session, integration, body.open_id, None, body.user_id, actor=actor.label
    )
    await session.commit()
    return UserBindingOut(
        id=row.id, integration_id=row.integration_id, open_id=row.open_id, user_id=row.user_id
    )


@router.delete(
    "/orgs/{org_id}/feishu-user-bindings/{binding_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {}, 404: {}},
)
async def unbind_user(
    org_id: str, binding_id: str, actor: ActorDep, session: SessionDep
) -> Response:
    await require_org(session, actor, org_id)
    await feishu_identities.require_admin(session, actor.user_id, org_id)
    await feishu_identities.unbind(session, org_id, binding_id, actor.label)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class BindingConfirmIn(BaseModel):
    confirmation_code: str = Field(
        default="",
        max_length=40,
        description="The code from the bot's private message to the Feishu user",
    )


@router.post(
    "/feishu-bindings/{code}/confirm",
    response_model=UserBindingOut,
    responses={403: {}, 404: {}, 409: {}, 422: {}, 429: {}},
)
async def confirm_binding(
    code: str,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    body: BindingConfirmIn | None = None,
) -> UserBindingOut:
    """Link the Feishu user of binding link `code` to the calling member. Needs the confirmation
    code from the bot's private message; 409 when the link was already used (or this member is
    already linked), 429 after too many wrong codes."""
    if actor.user_id is None:
        raise Invalid("sign in as a member to link your Feishu or Lark account")
    confirmation = body.confirmation_code if body is not None else ""
    row, integration = await bindings.redeem(session, code, confirmation, actor.user_id)
    await session.commit()
    await _tell_linked(services, session, integration, row.open_id, actor.user_id)
    return UserBindingOut(
        id=row.id, integration_id=row.integration_id, open_id=row.open_id, user_id=row.user_id
    )


async def _tell_linked(
    services: ServicesDep,
    session: SessionDep,
    integration: Integration,
    open_id: str,
    user_id: str,
) -> None:
    # The Feishu user hears it too, privately: if someone else used a leaked link and code,
    # the owner of the Feishu account learns at once whom they now act as.
    me = await session.get(User, user_id)
    spawn_private_notice(
        services,
        integration.id,
        open_id,
        texts.FEISHU_BINDING_LINKED_NOTICE.format(
            product=bindings.product(integration.region), name=me.name if me else user_id
        ),
        key=f"linked:{open_id}:{user_id}:{time.time_ns()}",
    )


# Headers of the bind page: never framed (clickjacking a confirmation), never cached, and the
# link's code in its URL never sent to another site as a Referer. (Not `no-referrer`: with it
# browsers send `Origin: null` on the form post, which the CSRF check rightly refuses.)
_BIND_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


def _bind_page(
    request: Request, product: str, context: dict[str, object], status_code: int = 200
) -> HTMLResponse:
    response = render(
        request,
        "feishu/bind.html",
        None,
        {"title": texts.FEISHU_BINDING_PAGE_TITLE.format(product=product), **context},
        status_code=status_code,
    )
    response.headers.update(_BIND_PAGE_HEADERS)
    return response


async def _bind_state(
    code: str, request: Request, services: ServicesDep, session: SessionDep
) -> tuple[bindings.CodeInfo | None, str | None, HTMLResponse | None, dict[str, object]]:
    """What both the page and its form post start from: the link, who is asking, and the answer
    when there is nothing to confirm (unknown link, signed out, not a member, already used)."""
    info = await bindings.peek(session, code)
    if info is None:
        page = _bind_page(
            request, "Feishu or Lark", {"error": texts.FEISHU_BINDING_INVALID}, status_code=404
        )
        return None, None, page, {}
    who = info.display_name or info.open_id
    base: dict[str, object] = {
        "intro": texts.FEISHU_BINDING_PAGE_INTRO.format(
            product=info.product,
            who=who,
            bot=info.bot_name or info.agent_name,
            agent=info.agent_name,
            org=info.org_name,
        )
    }
    try:
        actor = await current_actor(request, services, session)
    except Unauthorized:
        page = _bind_page(
            request,
            info.product,
            {
                **base,
                "sign_in": texts.FEISHU_BINDING_SIGN_IN.format(org=info.org_name),
                "login_url": "/login?next=" + quote(f"/bind/feishu/{code}", safe="/"),
            },
        )
        return info, None, page, base
    if actor.user_id is None or await orgs.membership(session, actor.user_id, info.org_id) is None:
        page = _bind_page(
            request,
            info.product,
            {**base, "error": texts.FEISHU_BINDING_NOT_MEMBER},
            status_code=403,
        )
        return info, None, page, base
    if info.used:
        already = (
            texts.FEISHU_BINDING_ALREADY_LINKED
            if info.bound_user_id == actor.user_id
            else texts.FEISHU_BINDING_ALREADY_USED
        )
        page = _bind_page(
            request,
            info.product,
            {**base, "error": already.format(product=info.product)},
            status_code=409,
        )
        return info, actor.user_id, page, base
    if info.void:
        page = _bind_page(
            request,
            info.product,
            {**base, "error": texts.FEISHU_BINDING_TOO_MANY.format(product=info.product)},
            status_code=429,
        )
        return info, actor.user_id, page, base
    return info, actor.user_id, None, base


async def _bind_form(
    request: Request,
    session: SessionDep,
    code: str,
    info: bindings.CodeInfo,
    user_id: str,
    base: dict[str, object],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    me = await session.get(User, user_id)
    name = me.name if me is not None else user_id
    form = {
        "as_text": texts.FEISHU_BINDING_PAGE_AS.format(name=name),
        "warning": texts.FEISHU_BINDING_PAGE_WARNING.format(
            who=info.display_name or info.open_id, product=info.product
        ),
        "label": texts.FEISHU_BINDING_CODE_LABEL.format(product=info.product),
        "action": f"/bind/feishu/{quote(code, safe='')}",
    }
    return _bind_page(
        request, info.product, {**base, "form": form, "error": error}, status_code=status_code
    )


@pages.get("/bind/feishu/{code}", response_class=HTMLResponse)
async def binding_page(
    code: str, request: Request, services: ServicesDep, session: SessionDep
) -> HTMLResponse:
    # Confirming is a form POST with the code from the private message, so a link preview
    # fetching this page binds no one, and neither does anyone who only has the link.
    info, user_id, answer, base = await _bind_state(code, request, services, session)
    if answer is not None:
        return answer
    assert info is not None and user_id is not None
    return await _bind_form(request, session, code, info, user_id, base)


@pages.post("/bind/feishu/{code}", response_class=HTMLResponse)
async def binding_submit(
    code: str,
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    confirmation: Annotated[str, Form(alias="code", max_length=40)] = "",
) -> HTMLResponse:
    info, user_id, answer, base = await _bind_state(code, request, services, session)
    if answer is not None:
        return answer
    assert info is not None and user_id is not None
    try:
        row, integration = await bindings.redeem(session, code, confirmation, user_id)
    except DomainError as exc:
        await session.rollback()
        if exc.status in (409, 429, 404, 403):
            return _bind_page(
                request, info.product, {**base, "error": exc.detail}, status_code=exc.status
            )
        return await _bind_form(
            request, session, code, info, user_id, base, error=exc.detail, status_code=exc.status
        )
    await session.commit()
    await _tell_linked(services, session, integration, row.open_id, user_id)
    me = await session.get(User, user_id)
    done = texts.FEISHU_BINDING_DONE.format(
        product=info.product, name=me.name if me is not None else user_id
    )
    return _bind_page(request, info.product, {"done": done})
