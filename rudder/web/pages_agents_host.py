"""New Agent, and the agent's Profile, Instructions, Skills and Budget tabs. (The
organization's pages of the agents host — skills library, Costs, Activity, Messenger's
attention threads — are in pages_org_host.)"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import agent_control, texts
from rudder.api.deps import Actor, ActorDep, ServicesDep, SessionDep
from rudder.db.models import (
    Agent,
    Secret,
)
from rudder.domain import agents as agents_domain
from rudder.domain import budgets, costs, skills
from rudder.domain.errors import DomainError, Forbidden, Invalid
from rudder.runtimes.envcheck import check_environment
from rudder.runtimes.policy import RuntimePolicy
from rudder.web import runtime_forms
from rudder.web.lookups import find_agent
from rudder.web.pages_agents import agent_page
from rudder.web.templating import Shell, fragment, not_found, render, shell

router = APIRouter(include_in_schema=False)

ROLES = ("general", "engineer", "researcher", "pm", "designer", "qa", "devops", "cto", "ceo")
KEEPALIVE_S = 15.0


def dollars_to_cents(dollars: str, field: str) -> int:
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
            budget_monthly_cents=dollars_to_cents(data.get("budget", ""), "budget_monthly_cents"),
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
        return agent_page(request, frame, agent, tab, context, status=422)
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
    return agent_page(request, frame, agent, tab, context)


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
            "budget_monthly_cents": dollars_to_cents(
                str(form.get("budget") or ""), "budget_monthly_cents"
            ),
            "budget_warn_percent": int(str(form.get("warn") or "80")),
            "budget_hard_stop": form.get("hard_stop") == "on",
        }
    except (DomainError, ValueError) as exc:
        context = await _tab_context(session, agent, "budget")
        context["errors"] = [getattr(exc, "detail", None) or "budget_warn_percent: a whole number"]
        return agent_page(request, frame, agent, "budget", context, status=422)
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
        return agent_page(request, frame, agent, "profile", context, status=409)
    return RedirectResponse(f"/agents/{agent.id}/profile", status_code=303)


# -- the skills library ---------------------------------------------------------------------------
