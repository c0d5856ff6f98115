"""The organization's pages of the agents host: the skills library, Costs and Activity, and
Messenger's attention threads and live list. (The agent's own pages: pages_agents_host.)"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import agent_control, texts
from rudder.api.deps import Actor, ActorDep, ServicesDep, SessionDep
from rudder.db.models import (
    Agent,
    BindingCode,
    FeishuUserBinding,
    Integration,
    ModelPrice,
    Run,
    utcnow,
)
from rudder.domain import activity, budgets, costs, skills
from rudder.domain import agents as agents_domain
from rudder.domain.agent_status import AgentStatus
from rudder.domain.errors import DomainError, Invalid, NotFound
from rudder.live import LiveEvent, org_topic
from rudder.web.pages_agents_host import KEEPALIVE_S, dollars_to_cents
from rudder.web.templating import Shell, fragment, not_found, render, shell

router = APIRouter(include_in_schema=False)


async def _library(
    request: Request,
    session: AsyncSession,
    frame: Shell,
    errors: list[str] | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    assert frame.current is not None
    rows = await skills.list_skills(session, frame.current.id)
    users: dict[str, list[str]] = {s.name: [] for s in rows}
    for a in await agents_domain.list_agents(session, frame.current.id):
        for n in a.skills or []:
            users.setdefault(n, []).append(a.name)
    context = {"skills": rows, "users": users, "errors": errors or [], "form": form or {}}
    return render(request, "skills/library.html", frame, context, status_code=status, nav="skills")


@router.get("/skills", response_class=HTMLResponse)
async def skills_page(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    return await _library(request, session, frame)


@router.post("/skills", response_class=HTMLResponse)
async def skills_create(request: Request, actor: ActorDep, session: SessionDep) -> Response:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    org_id = frame.current.id
    form = await request.form()
    data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        await agents_domain.require_runtime_admin(
            session, actor.label, org_id, "only owners and admins can change the skills library"
        )
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str) and upload.filename:
            skill_md, files = skills.read_zip(await upload.read(skills.MAX_ZIP_BYTES + 1))
            await skills.save_skill(session, org_id, skill_md, files, actor.label)
        else:
            text = skills.compose_skill_md(
                data.get("name", ""), data.get("description", ""), data.get("instructions", "")
            )
            await skills.save_skill(session, org_id, text, {}, actor.label)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        frame = await shell(request, session, actor)
        return await _library(request, session, frame, [exc.detail], 422, data)
    return RedirectResponse("/skills", status_code=303)


@router.post("/skills/{name}/delete", response_class=HTMLResponse)
async def skills_delete(
    name: str, request: Request, actor: ActorDep, session: SessionDep
) -> Response:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    try:
        await agents_domain.require_runtime_admin(
            session,
            actor.label,
            frame.current.id,
            "only owners and admins can change the skills library",
        )
        await skills.delete_skill(session, frame.current.id, name, actor.label)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        frame = await shell(request, session, actor)
        return await _library(request, session, frame, [exc.detail], exc.status)
    return RedirectResponse("/skills", status_code=303)


# -- Costs and Activity ---------------------------------------------------------------------------


def _chart(months: list[str], totals: dict[str, int]) -> dict[str, Any]:
    """Bars for an inline SVG drawn on the server (no chart library, no script)."""
    width, height, pad = 640, 180, 24
    top = max([*totals.values(), 1])
    step = (width - 2 * pad) / max(len(months), 1)
    bars = []
    for i, m in enumerate(months):
        h = (height - 2 * pad) * totals.get(m, 0) / top
        bars.append(
            {
                "x": round(pad + i * step + step * 0.15, 1),
                "y": round(height - pad - h, 1),
                "w": round(step * 0.7, 1),
                "h": round(h, 1),
                "label": m,
                "value": f"${totals.get(m, 0) / 100:.2f}",
                "cx": round(pad + i * step + step / 2, 1),
            }
        )
    return {"width": width, "height": height, "bars": bars, "base": height - pad}


@router.get("/costs", response_class=HTMLResponse)
async def costs_page(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    report = await costs.report(session, frame.current.id, 6)
    context = {
        "report": report,
        "chart": _chart(report.months, report.total_cents_by_month),
        "org": frame.current,
        "org_spent": await budgets.spent_cents(session, frame.current.id),
        "prices": await costs.price_table(session, frame.current.id),
    }
    return render(request, "org/costs.html", frame, context, nav="costs")


ORG_BUDGET_ADMINS_ONLY = "only owners and admins can change the organization's budget"
PRICES_ADMINS_ONLY = "only owners and admins can change the model price table"


async def _costs_error(
    request: Request, session: AsyncSession, actor: Actor, detail: str, status: int
) -> HTMLResponse:
    await session.rollback()
    response = await costs_page(request, actor, session)
    body = bytes(response.body).decode()
    note = f'<div class="errors" role="alert" data-testid="errors"><ul><li>{escape(detail)}</li></ul></div>'
    body = body.replace('<main class="page">', '<main class="page">' + note, 1)
    return HTMLResponse(body, status_code=status)


@router.post("/costs/budget", response_class=HTMLResponse)
async def save_org_budget(
    request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    org = frame.current
    form = await request.form()
    try:
        await agents_domain.require_runtime_admin(
            session, actor.label, org.id, ORG_BUDGET_ADMINS_ONLY
        )
        cents = dollars_to_cents(str(form.get("budget") or ""), "budget_monthly_cents")
        warn = int(str(form.get("warn") or "80"))
        if not 1 <= warn <= 100:
            raise Invalid("budget_warn_percent: between 1 and 100")
    except (DomainError, ValueError) as exc:
        detail = getattr(exc, "detail", None) or "budget_warn_percent: a whole number"
        return await _costs_error(request, session, actor, detail, getattr(exc, "status", 422))
    org.budget_monthly_cents = cents
    org.budget_warn_percent = warn
    org.budget_hard_stop = form.get("hard_stop") == "on"
    activity.record(
        session,
        org_id=org.id,
        actor=actor.label,
        action="budget.updated",
        entity_type="org",
        entity_id=org.id,
        details={"budget_monthly_cents": cents, "budget_warn_percent": warn},
    )
    await session.commit()
    await agent_control.release_budgets(services, org.id, actor.label)
    return RedirectResponse("/costs", status_code=303)


@router.post("/costs/prices", response_class=HTMLResponse)
async def save_price(request: Request, actor: ActorDep, session: SessionDep) -> Response:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    org_id = frame.current.id
    form = await request.form()
    model = str(form.get("model") or "").strip()
    try:
        await agents_domain.require_runtime_admin(session, actor.label, org_id, PRICES_ADMINS_ONLY)
        if not model or len(model) > 200:
            raise Invalid("model: 1 to 200 characters")
        prices = {}
        for key in ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok"):
            raw = str(form.get(key) or "0").strip()
            try:
                prices[key] = float(raw)
            except ValueError:
                raise Invalid(f"{key}: a number of US dollars per million tokens") from None
            if not 0 <= prices[key] <= 10_000:
                raise Invalid(f"{key}: between 0 and 10000")
    except DomainError as exc:
        return await _costs_error(request, session, actor, exc.detail, exc.status)
    row = await session.scalar(
        select(ModelPrice).where(ModelPrice.org_id == org_id, ModelPrice.model == model)
    )
    if row is None:
        session.add(ModelPrice(org_id=org_id, model=model, **prices))
    else:
        for key, value in prices.items():
            setattr(row, key, value)
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="model_price.updated",
        entity_type="model_price",
        details={"model": model, **prices},
    )
    await session.commit()
    return RedirectResponse("/costs", status_code=303)


def _parse_time(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{field}: a date like 2026-12-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/activity", response_class=HTMLResponse)
async def activity_page(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    q = request.query_params
    errors: list[str] = []
    rows: list[Any] = []
    try:
        rows = await activity.query(
            session,
            frame.current.id,
            actor=q.get("actor") or None,
            agent_id=q.get("agent") or None,
            action=q.get("action") or None,
            since=_parse_time(q.get("since"), "since"),
            until=_parse_time(q.get("until"), "until"),
            limit=200,
        )
    except DomainError as exc:
        errors.append(exc.detail)
    agent_list = await agents_domain.list_agents(session, frame.current.id)
    context = {
        "rows": rows,
        "names": await activity.actor_names(session, rows),
        "agents": agent_list,
        "agent_names": {a.id: a.name for a in agent_list},
        "filters": dict(q),
        "errors": errors,
    }
    return render(request, "org/activity.html", frame, context, nav="activity")


# -- Messenger: what needs attention, and the live list -------------------------------------------


async def attention(session: AsyncSession, org_id: str) -> dict[str, Any]:
    """Messenger's system threads: failed runs, budget alerts, Feishu users waiting to bind."""
    failed = list(
        await session.scalars(
            select(Run)
            .where(Run.org_id == org_id, Run.status == "failed")
            .order_by(Run.finished_at.desc())
            .limit(50)
        )
    )
    incidents = await budgets.open_incidents(session, org_id)
    # People who messaged a bot and got a binding link they have not used yet.
    bound = select(FeishuUserBinding.open_id).where(
        FeishuUserBinding.integration_id == BindingCode.integration_id
    )
    waiting_rows = (
        await session.execute(
            select(BindingCode, Integration.agent_id)
            .join(Integration, Integration.id == BindingCode.integration_id)
            .where(
                BindingCode.org_id == org_id,
                BindingCode.used_at.is_(None),
                BindingCode.expires_at > utcnow(),
                BindingCode.open_id.not_in(bound),
            )
            .order_by(BindingCode.created_at.desc())
            .limit(50)
        )
    ).all()
    seen: set[tuple[str, str]] = set()
    waiting = []
    for code, agent_id in waiting_rows:
        if (code.integration_id, code.open_id) not in seen:
            seen.add((code.integration_id, code.open_id))
            waiting.append({"code": code, "agent_id": agent_id})
    names = dict(
        (await session.execute(select(Agent.id, Agent.name).where(Agent.org_id == org_id))).all()
    )
    return {
        "failed_runs": failed,
        "incidents": incidents,
        "waiting": waiting,
        "agent_names": names,
    }


@router.get("/messenger/attention", response_class=HTMLResponse)
async def attention_fragment(
    request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return HTMLResponse("")
    return fragment(
        request, "messenger/_attention.html", await attention(session, frame.current.id)
    )


@router.get("/messenger/system/{kind}", response_class=HTMLResponse)
async def system_thread(
    kind: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None or kind not in ("failed-runs", "budget-alerts", "feishu-users"):
        return not_found(request, frame, texts.WEB_CONVERSATION_NOT_FOUND)
    context = await attention(session, frame.current.id)
    context["kind"] = kind
    return render(request, "messenger/system.html", frame, context, nav="messenger")


@router.get("/messenger/live")
async def messenger_live(
    request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    """Server-sent events of the current organization: a list changed, fetch it again."""
    frame = await shell(request, session, actor)
    if frame.current is None:
        raise NotFound("organization not found")
    topic = org_topic(frame.current.id)
    await session.close()
    live = services.live

    async def stream() -> AsyncIterator[str]:
        async with live.subscribe(topic) as sub:
            yield "event: hello\ndata: {}\n\n"
            while not sub.overflowed.is_set():
                try:
                    item: LiveEvent = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {item.event}\ndata: {item.encoded()}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


__all__ = ["AgentStatus", "attention", "router"]
