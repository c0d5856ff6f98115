"""New Agent, and the agent's Profile, Instructions, Skills, Budget tabs; the skills library,
Costs and Activity pages; Messenger's attention threads and its live list."""

from __future__ import annotations

import asyncio
import math
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
    Secret,
    utcnow,
)
from rudder.domain import activity, budgets, costs, skills
from rudder.domain import agents as agents_domain
from rudder.domain.agent_status import AgentStatus
from rudder.domain.errors import DomainError, Forbidden, Invalid, NotFound
from rudder.live import LiveEvent, org_topic
from rudder.runtimes import RUNTIME_LABELS
from rudder.runtimes.envcheck import check_environment
from rudder.runtimes.policy import RuntimePolicy
from rudder.web import runtime_forms
from rudder.web.lookups import find_agent
from rudder.web.templating import Shell, fragment, not_found, render, shell

router = APIRouter(include_in_schema=False)

ROLES = ("general", "engineer", "researcher", "pm", "designer", "qa", "devops", "cto", "ceo")
KEEPALIVE_S = 15.0


def _cents(dollars: str, field: str) -> int:
    text = (dollars or "").strip().lstrip("$")
    if not text:
        return 0
    try:
        value = float(text)
    except ValueError:
        raise Invalid(f"{field}: a number of US dollars, like 25 or 7.50") from None
    if not math.isfinite(value) or not 0 <= value * 100 <= agents_domain.MAX_BUDGET_CENTS:
        raise Invalid(f"{field}: from 0 to 20000000 US dollars")
    return round(value * 100)


async def _org_context(session: AsyncSession, org_id: str) -> dict[str, Any]:
    secret_names = list(
        await session.scalars(
            select(Secret.name).where(Secret.org_id == org_id).order_by(Secret.name)
        )
    )
    return {
        "runtime_forms": runtime_forms.forms(),
        "secret_names": secret_names,
        "library": await skills.list_skills(session, org_id),
        "roles": ROLES,
    }


def _tab(
    request: Request,
    frame: Shell,
    agent: Agent,
    tab: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    data = {
        "agent": agent,
        "tab": tab,
        "runtime_label": RUNTIME_LABELS.get(agent.runtime_type, agent.runtime_type),
        **context,
    }
    return render(request, f"agents/{tab}.html", frame, data, status_code=status, nav="agents")


async def _agent_or_404(
    request: Request, session: AsyncSession, actor: Actor, agent_id: str
) -> tuple[Agent | None, Shell, HTMLResponse | None]:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        frame = await shell(request, session, actor)
        return None, frame, not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    return agent, await shell(request, session, actor, agent.org_id), None


# -- New Agent ------------------------------------------------------------------------------------


@router.get("/agents/new", response_class=HTMLResponse)
async def new_agent(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    context = await _org_context(session, frame.current.id)
    context.update(
        form={"runtime_type": "process", "budget": "", "warn": "80", "hard_stop": True},
        values=runtime_forms.empty_values(),
        chosen_skills=[],
        errors=[],
    )
    return render(request, "agents/new.html", frame, context, nav="agents")


@router.post("/agents/new", response_class=HTMLResponse)
async def create_agent(
    request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    frame = await shell(request, session, actor)
    if frame.current is None:
        return not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    org_id = frame.current.id
    form = await request.form()
    data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    chosen = [str(v) for v in form.getlist("skills")]
    runtime_type = data.get("runtime_type", "process")
    try:
        config = runtime_forms.config_from_form(runtime_type, data)
        agent = await agents_domain.create_agent(
            session,
            org_id,
            name=data.get("name", ""),
            title=data.get("title") or None,
            role=data.get("role") or "general",
            capabilities=data.get("capabilities") or None,
            instructions=data.get("instructions") or None,
            runtime_type=runtime_type,
            runtime_config=config,
            skills=chosen,
            budget_monthly_cents=_cents(data.get("budget", ""), "budget_monthly_cents"),
            budget_warn_percent=int(data.get("warn") or 80),
            budget_hard_stop=data.get("hard_stop") == "on",
            actor=actor.label,
            policy=RuntimePolicy.from_settings(services.settings),
        )
        await session.commit()
    except (DomainError, runtime_forms.FormError, ValueError) as exc:
        await session.rollback()
        frame = await shell(request, session, actor)
        context = await _org_context(session, org_id)
        values = runtime_forms.empty_values()
        try:
            values[runtime_type] = runtime_forms.values_for(
                runtime_type, runtime_forms.config_from_form(runtime_type, data)
            )
        except (runtime_forms.FormError, KeyError):
            pass
        context.update(
            form={**data, "hard_stop": data.get("hard_stop") == "on"},
            values=values,
            chosen_skills=chosen,
            errors=[getattr(exc, "detail", None) or str(exc)],
        )
        return render(request, "agents/new.html", frame, context, status_code=422, nav="agents")
    return RedirectResponse(f"/agents/{agent.id}/profile?created=1", status_code=303)


@router.post("/agents/check", response_class=HTMLResponse)
async def check_new_runtime(
    request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> HTMLResponse:
    """`rudder agent check`'s checks for a runtime not saved yet (the Test runtime button)."""
    frame = await shell(request, session, actor)
    if frame.current is None:
        return fragment(request, "agents/_check_rows.html", {"error": texts.WEB_AGENT_NOT_FOUND})
    form = await request.form()
    data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    runtime_type = data.get("runtime_type", "process")
    return await _check(request, session, services, actor, frame.current.id, runtime_type, data)


async def _check(
    request: Request,
    session: AsyncSession,
    services: ServicesDep,
    actor: Actor,
    org_id: str,
    runtime_type: str,
    data: dict[str, str],
) -> HTMLResponse:
    try:
        # The checks run the runtime's command (--version, login status) on this server.
        await agents_domain.require_runtime_admin(session, actor.label, org_id)
        config = runtime_forms.config_from_form(runtime_type, data)
    except (Forbidden, runtime_forms.FormError) as exc:
        return fragment(
            request, "agents/_check_rows.html", {"error": getattr(exc, "detail", str(exc))}
        )
    from rudder.domain import secret_store
    from rudder.runtimes.base import RuntimeError_

    async def resolve(name: str) -> str:
        async with services.sessions() as s:
            try:
                return await secret_store.get_secret_value(s, services.box, org_id, name)
            except Exception as exc:
                raise RuntimeError_(f"secret {name!r} is not available: {exc}") from None

    report = await check_environment(runtime_type, config, resolve)
    return fragment(request, "agents/_check_rows.html", {"report": report, "error": None})


# -- the agent's tabs ----------------------------------------------------------------------------


async def _save(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    agent: Agent,
    tab: str,
    changes: dict[str, Any],
    services: ServicesDep,
) -> Response:
    try:
        policy = RuntimePolicy.from_settings(services.settings)
        await agents_domain.update_agent(session, agent, changes, actor.label, policy)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        await session.refresh(agent)
        frame = await shell(request, session, actor, agent.org_id)
        context = await _tab_context(session, agent, tab)
        context["errors"] = [exc.detail]
        return _tab(request, frame, agent, tab, context, status=422)
    if any(k in changes for k in agents_domain.BUDGET_KEYS):
        await agent_control.release_budgets(services, agent.org_id, actor.label)
    return RedirectResponse(f"/agents/{agent.id}/{tab}?saved=1", status_code=303)


async def _tab_context(session: AsyncSession, agent: Agent, tab: str) -> dict[str, Any]:
    context: dict[str, Any] = {"errors": [], "saved": False, "roles": ROLES}
    if tab == "skills":
        context["library"] = await skills.list_skills(session, agent.org_id)
    if tab == "budget":
        context["spent"] = await budgets.spent_cents(session, agent.org_id, agent.id)
        context["month"] = budgets.month_of()
        context["incidents"] = [
            i for i in await costs.all_incidents(session, agent.org_id) if i.agent_id == agent.id
        ][:10]
    return context


@router.get("/agents/{agent_id}/profile", response_class=HTMLResponse)
async def profile_tab(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    return await agent_tab(agent_id, "profile", request, actor, session)


@router.get("/agents/{agent_id}/instructions", response_class=HTMLResponse)
async def instructions_tab(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    return await agent_tab(agent_id, "instructions", request, actor, session)


@router.get("/agents/{agent_id}/skills", response_class=HTMLResponse)
async def skills_tab(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    return await agent_tab(agent_id, "skills", request, actor, session)


@router.get("/agents/{agent_id}/budget", response_class=HTMLResponse)
async def budget_tab(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    return await agent_tab(agent_id, "budget", request, actor, session)


async def agent_tab(
    agent_id: str, tab: str, request: Request, actor: Actor, session: AsyncSession
) -> HTMLResponse:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if missing is not None or agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    context = await _tab_context(session, agent, tab)
    context["saved"] = request.query_params.get("saved") == "1"
    context["created"] = request.query_params.get("created") == "1"
    return _tab(request, frame, agent, tab, context)


@router.post("/agents/{agent_id}/profile", response_class=HTMLResponse)
async def save_profile(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    form = await request.form()
    changes = {
        "name": str(form.get("name") or ""),
        "title": str(form.get("title") or "") or None,
        "role": str(form.get("role") or "general"),
        "capabilities": str(form.get("capabilities") or "") or None,
    }
    return await _save(request, session, actor, agent, "profile", changes, services)


@router.post("/agents/{agent_id}/instructions", response_class=HTMLResponse)
async def save_instructions(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    form = await request.form()
    changes = {"instructions": str(form.get("instructions") or "") or None}
    return await _save(request, session, actor, agent, "instructions", changes, services)


@router.post("/agents/{agent_id}/skills", response_class=HTMLResponse)
async def save_skills(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    form = await request.form()
    changes = {"skills": [str(v) for v in form.getlist("skills")]}
    return await _save(request, session, actor, agent, "skills", changes, services)


@router.post("/agents/{agent_id}/budget", response_class=HTMLResponse)
async def save_budget(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    form = await request.form()
    try:
        changes = {
            "budget_monthly_cents": _cents(str(form.get("budget") or ""), "budget_monthly_cents"),
            "budget_warn_percent": int(str(form.get("warn") or "80")),
            "budget_hard_stop": form.get("hard_stop") == "on",
        }
    except (DomainError, ValueError) as exc:
        context = await _tab_context(session, agent, "budget")
        context["errors"] = [getattr(exc, "detail", None) or "budget_warn_percent: a whole number"]
        return _tab(request, frame, agent, "budget", context, status=422)
    return await _save(request, session, actor, agent, "budget", changes, services)


@router.post("/agents/{agent_id}/status", response_class=HTMLResponse)
async def change_status(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    agent, frame, missing = await _agent_or_404(request, session, actor, agent_id)
    if agent is None:
        return missing or not_found(request, frame, texts.WEB_AGENT_NOT_FOUND)
    action = str((await request.form()).get("action") or "")
    try:
        if action == "pause":
            await agent_control.pause(services, session, agent, actor.label)
        elif action == "resume":
            await agent_control.resume(services, session, agent, actor.label)
        elif action == "archive":
            await agents_domain.require_runtime_admin(
                session, actor.label, agent.org_id, "only owners and admins can archive an agent"
            )
            await agent_control.archive(services, session, agent, actor.label)
    except DomainError as exc:
        await session.rollback()
        await session.refresh(agent)
        context = await _tab_context(session, agent, "profile")
        context["errors"] = [exc.detail]
        return _tab(request, frame, agent, "profile", context, status=409)
    return RedirectResponse(f"/agents/{agent.id}/profile", status_code=303)


# -- the skills library ---------------------------------------------------------------------------


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
        cents = _cents(str(form.get("budget") or ""), "budget_monthly_cents")
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
