"""Feishu inbound: the webhook endpoint, the activity log, and member bindings."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from rudder import texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, require_org
from rudder.db.models import FeishuUserBinding, InboundEvent, Integration, User
from rudder.domain import secret_store
from rudder.domain.errors import Invalid, NotFound
from rudder.feishu import bindings
from rudder.feishu.connect import integration_for_agent
from rudder.feishu.events import EventError, parse_event
from rudder.feishu.inbound import pipeline
from rudder.feishu.webhook_codec import WebhookChallenge, WebhookRejected, parse_webhook

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
    open_id: str
    union_id: str | None
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
    """Feishu users seen by this organization's bots, with the member each is bound to."""
    await require_org(session, actor, org_id)
    integrations = {
        i.id: i
        for i in await session.scalars(select(Integration).where(Integration.org_id == org_id))
    }
    if not integrations:
        return []
    seen: dict[tuple[str, str], Any] = {}
    rows = await session.execute(
        select(
            InboundEvent.integration_id, InboundEvent.sender_open_id, InboundEvent.received_at
        ).where(
            InboundEvent.integration_id.in_(list(integrations)),
            InboundEvent.sender_open_id.is_not(None),
        )
    )
    for integration_id, open_id, at in rows.all():
        key = (integration_id, open_id)
        if key not in seen or at > seen[key]:
            seen[key] = at
    bound = {
        (b.integration_id, b.open_id): (b, u)
        for b, u in (
            await session.execute(
                select(FeishuUserBinding, User)
                .join(User, User.id == FeishuUserBinding.user_id)
                .where(FeishuUserBinding.org_id == org_id)
            )
        ).all()
    }
    for key in bound:
        seen.setdefault(key, None)
    out = []
    for (integration_id, open_id), at in sorted(
        seen.items(), key=lambda kv: str(kv[1]), reverse=True
    ):
        b = bound.get((integration_id, open_id))
        out.append(
            IdentityOut(
                integration_id=integration_id,
                agent_id=integrations[integration_id].agent_id,
                open_id=open_id,
                union_id=b[0].union_id if b else None,
                user_id=b[1].id if b else None,
                user_name=b[1].name if b else None,
                last_seen_at=at,
            )
        )
    return out


@router.post("/orgs/{org_id}/feishu-user-bindings", response_model=UserBindingOut)
async def bind_user(
    org_id: str, body: UserBindingIn, actor: ActorDep, session: SessionDep
) -> UserBindingOut:
    await require_org(session, actor, org_id)
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


@router.post("/feishu-bindings/{code}/confirm", response_model=UserBindingOut)
async def confirm_binding(code: str, actor: ActorDep, session: SessionDep) -> UserBindingOut:
    if actor.user_id is None:
        raise Invalid("sign in as a member to link your Feishu account")
    row, _ = await bindings.redeem(session, code, actor.user_id)
    await session.commit()
    return UserBindingOut(
        id=row.id, integration_id=row.integration_id, open_id=row.open_id, user_id=row.user_id
    )


@pages.get("/bind/feishu/{code}", response_class=HTMLResponse)
async def binding_page(code: str) -> HTMLResponse:
    # A plain page with one button: confirming is a POST, so link previews can't bind anyone.
    return HTMLResponse(f"""<!doctype html><meta charset="utf-8"><title>Link your Feishu account</title>
<body style="font:16px system-ui;max-width:32rem;margin:4rem auto">
<h1>Link your Feishu account</h1><p>Link the Feishu account that messaged the bot to your Rudder account.</p>
<button id="b">Link my account</button><p id="r"></p>
<script>document.getElementById('b').onclick=async()=>{{const r=await fetch('/api/feishu-bindings/{code}/confirm',{{method:'POST'}});
const j=await r.json();document.getElementById('r').textContent=r.ok?{texts.FEISHU_BINDING_DONE.format(name="your account")!r}:(j.detail||'Failed');}};</script>""")
