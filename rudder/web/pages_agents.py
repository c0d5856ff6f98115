"""Agents: the list, and an agent's Overview, Configuration and Runs tabs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from rudder import chat, texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep
from rudder.db.models import Agent, Conversation, Run, RunEventRow, Secret
from rudder.domain import agents as agents_domain
from rudder.domain.errors import DomainError
from rudder.feishu import connect as connecting
from rudder.runtimes import RUNTIME_LABELS
from rudder.runtimes.policy import RuntimePolicy
from rudder.web import handoff_links
from rudder.web.lookups import find_agent, find_run
from rudder.web.run_page import run_event_summary, run_outcome
from rudder.web.templating import Shell, not_found, render, shell

router = APIRouter(include_in_schema=False)

RUNS_SHOWN = 50


def agent_page(
    request: Request,
    frame: Shell,
    agent: Agent,
    tab: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    template: str | None = None,
) -> HTMLResponse:
    data = {
        "agent": agent,
        "tab": tab,
        "runtime_label": RUNTIME_LABELS.get(agent.runtime_type, agent.runtime_type),
        **context,
    }
    name = f"agents/{template or tab}.html"
    return render(request, name, frame, data, status_code=status, nav="agents")


@router.get("/", response_class=HTMLResponse)
@router.get("/agents", response_class=HTMLResponse)
async def agent_list(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    rows: list[tuple[Agent, str]] = []
    if frame.current is not None:
        for agent in await agents_domain.list_agents(session, frame.current.id):
            integration = await connecting.integration_for_agent(session, agent.id)
            rows.append((agent, integration.status if integration else "disconnected"))
    from rudder.domain import budgets

    spent = await budgets.spent_by_agent(session, frame.current.id) if frame.current else {}
    regions = {}
    for agent, _ in rows:
        integration = await connecting.integration_for_agent(session, agent.id)
        regions[agent.id] = integration.region if integration else None
    context = {"rows": rows, "labels": RUNTIME_LABELS, "spent": spent, "regions": regions}
    return render(request, "agents/list.html", frame, context, nav="agents")


@router.get("/agents/{agent_id}", response_class=HTMLResponse)
async def overview(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    frame = await shell(request, session, actor, agent.org_id)
    conversations = await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.agent_id == agent.id)
    )
    last_run = await session.scalar(
        select(Run).where(Run.agent_id == agent.id).order_by(Run.created_at.desc()).limit(1)
    )
    integration = await connecting.integration_for_agent(session, agent.id)
    context = {
        "conversations": conversations or 0,
        "last_run": last_run,
        "integration": integration,
    }
    return agent_page(request, frame, agent, "overview", context)


async def _config_context(
    session: Any, agent: Agent, runtime_type: str, config: dict[str, Any]
) -> dict[str, Any]:
    from rudder.web import runtime_forms

    values = runtime_forms.empty_values()
    values[runtime_type] = runtime_forms.values_for(runtime_type, config)
    secret_names = list(
        await session.scalars(
            select(Secret.name).where(Secret.org_id == agent.org_id).order_by(Secret.name)
        )
    )
    return {
        "runtime_forms": runtime_forms.forms(),
        "form": {"runtime_type": runtime_type},
        "values": values,
        "secret_names": secret_names,
        "config_json": json.dumps(config, indent=2),
        "revisions": await agents_domain.revisions(session, agent.id),
        "errors": [],
        "saved": False,
    }


@router.get("/agents/{agent_id}/configuration", response_class=HTMLResponse)
async def configuration(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    frame = await shell(request, session, actor, agent.org_id)
    context = await _config_context(session, agent, agent.runtime_type, dict(agent.runtime_config))
    context["saved"] = request.query_params.get("saved") == "1"
    return agent_page(request, frame, agent, "configuration", context)


@router.post("/agents/{agent_id}/configuration", response_class=HTMLResponse)
async def save_configuration(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> Response:
    """The runtime, from its form (or the Advanced JSON field), kept as a revision."""
    from rudder.web import runtime_forms

    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    form = await request.form()
    data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    runtime_type = data.get("runtime_type", agent.runtime_type)
    errors: list[str] = []
    config: dict[str, Any] = {}
    try:
        config = runtime_forms.config_from_form(runtime_type, data)
        changes: dict[str, Any] = {"runtime_type": runtime_type, "runtime_config": config}
        policy = RuntimePolicy.from_settings(services.settings)
        await agents_domain.update_agent(session, agent, changes, actor.label, policy)
        await session.commit()
    except (DomainError, runtime_forms.FormError) as exc:
        await session.rollback()
        errors.append(getattr(exc, "detail", None) or str(exc))
    if errors:
        # A rollback expires every loaded row; reload what the page shows.
        await session.refresh(agent)
        frame = await shell(request, session, actor, agent.org_id)
        context = await _config_context(session, agent, runtime_type, config)
        context["errors"] = errors
        context["config_json_override"] = data.get("runtime_config_json") or data.get(
            "runtime_config"
        )
        return agent_page(request, frame, agent, "configuration", context, status=422)
    return RedirectResponse(f"/agents/{agent.id}/configuration?saved=1", status_code=303)


@router.post("/agents/{agent_id}/revisions/{rev}/rollback", response_class=HTMLResponse)
async def rollback(
    agent_id: str,
    rev: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    from rudder import agent_control

    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    try:
        await agents_domain.rollback(
            session, agent, rev, actor.label, RuntimePolicy.from_settings(services.settings)
        )
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        await session.refresh(agent)
        frame = await shell(request, session, actor, agent.org_id)
        context = await _config_context(
            session, agent, agent.runtime_type, dict(agent.runtime_config)
        )
        context["errors"] = [exc.detail]
        return agent_page(request, frame, agent, "configuration", context, status=exc.status)
    await agent_control.release_budgets(services, agent.org_id, actor.label)
    return RedirectResponse(f"/agents/{agent.id}/configuration?saved=1", status_code=303)


@router.get("/agents/{agent_id}/runs", response_class=HTMLResponse)
async def runs(
    agent_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    frame = await shell(request, session, actor, agent.org_id)
    rows = list(
        await session.scalars(
            select(Run)
            .where(Run.agent_id == agent.id)
            .order_by(Run.created_at.desc())
            .limit(RUNS_SHOWN)
        )
    )
    return agent_page(request, frame, agent, "runs", {"runs": rows})


@router.get("/agents/{agent_id}/runs/{run_id}", response_class=HTMLResponse)
async def run_detail(
    agent_id: str, run_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    run = await find_run(session, actor, run_id)
    agent = await find_agent(session, actor, agent_id)
    if agent is None or run is None or run.agent_id != agent.id:
        return not_found(request, await shell(request, session, actor), texts.WEB_RUN_NOT_FOUND)
    frame = await shell(request, session, actor, agent.org_id)
    events = list(
        await session.scalars(
            select(RunEventRow).where(RunEventRow.run_id == run.id).order_by(RunEventRow.seq)
        )
    )
    # The transcript is the run's text events joined; other events are listed by kind.
    transcript = "".join(str(e.payload.get("text", "")) for e in events if e.kind == "text")
    others = [(e, run_event_summary(e.kind, e.payload)) for e in events if e.kind != "text"]
    context = {
        "run": run,
        "transcript": transcript,
        "others": others,
        "outcome": run_outcome(run),
        # Hand-offs: the run that handed the turn to this one, and the runs it handed to.
        "handed_from": await handoff_links.handed_from(session, run),
        "handed_to": (await handoff_links.handed_to(session, [run.id])).get(run.id, []),
        "chain_root": await handoff_links.link_of(session, run.handoff_root_id)
        if run.handoff_root_id != run.handed_from_run_id
        else None,
    }
    # The Runs tab stays highlighted on one run's page.
    return agent_page(request, frame, agent, "runs", context, template="run")


@router.post("/agents/{agent_id}/runs/{run_id}/cancel", response_class=HTMLResponse)
async def cancel_run(
    agent_id: str,
    run_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    run = await find_run(session, actor, run_id)
    if run is None or run.agent_id != agent_id:
        return not_found(request, await shell(request, session, actor), texts.WEB_RUN_NOT_FOUND)
    await chat.cancel_runs(services, session, [run])
    return RedirectResponse(f"/agents/{agent_id}/runs/{run_id}", status_code=303)
