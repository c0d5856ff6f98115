"""Agents: the list, and an agent's Overview, Configuration and Runs tabs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from rudder import chat, texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep
from rudder.db.models import Agent, Conversation, Run, RunEventRow
from rudder.domain import agents as agents_domain
from rudder.domain.errors import DomainError
from rudder.feishu import connect as connecting
from rudder.runtimes import RUNTIME_LABELS, RUNTIME_TYPES
from rudder.runtimes.policy import RuntimePolicy
from rudder.web.lookups import find_agent, find_run
from rudder.web.templating import Shell, not_found, render, shell

router = APIRouter(include_in_schema=False)

RUNS_SHOWN = 50


def _agent_page(
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


@router.get("/", response_class=HTMLResponse)
@router.get("/agents", response_class=HTMLResponse)
async def agent_list(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    rows: list[tuple[Agent, str]] = []
    if frame.current is not None:
        for agent in await agents_domain.list_agents(session, frame.current.id):
            integration = await connecting.integration_for_agent(session, agent.id)
            rows.append((agent, integration.status if integration else "disconnected"))
    return render(
        request, "agents/list.html", frame, {"rows": rows, "labels": RUNTIME_LABELS}, nav="agents"
    )


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
    return _agent_page(request, frame, agent, "overview", context)


def _config_context(agent: Agent, runtime_type: str, config_text: str) -> dict[str, Any]:
    return {
        "runtime_types": [(t, RUNTIME_LABELS.get(t, t)) for t in RUNTIME_TYPES],
        "form_runtime_type": runtime_type,
        "form_config": config_text,
        "form_status": agent.status,
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
    context = _config_context(agent, agent.runtime_type, json.dumps(agent.runtime_config, indent=2))
    context["saved"] = request.query_params.get("saved") == "1"
    return _agent_page(request, frame, agent, "configuration", context)


@router.post("/agents/{agent_id}/configuration", response_class=HTMLResponse)
async def save_configuration(
    agent_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    runtime_type: Annotated[str, Form(max_length=50)],
    runtime_config: Annotated[str, Form(max_length=20_000)] = "{}",
    status: Annotated[str, Form(max_length=20)] = "active",
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    frame = await shell(request, session, actor, agent.org_id)
    errors: list[str] = []
    config: Any = None
    try:
        config = json.loads(runtime_config or "{}")
    except json.JSONDecodeError as exc:
        errors.append(texts.WEB_CONFIG_NOT_JSON.format(detail=exc.msg, line=exc.lineno))
    if config is not None and not isinstance(config, dict):
        errors.append(texts.WEB_CONFIG_NOT_OBJECT)
    if not errors:
        try:
            changes = {"runtime_type": runtime_type, "runtime_config": config, "status": status}
            policy = RuntimePolicy.from_settings(services.settings)
            await agents_domain.update_agent(session, agent, changes, actor.label, policy)
            await session.commit()
        except DomainError as exc:
            await session.rollback()
            errors.append(exc.detail)
    if errors:
        # A rollback expires every loaded row; reload what the page shows.
        await session.refresh(agent)
        frame = await shell(request, session, actor, agent.org_id)
        context = _config_context(agent, runtime_type, runtime_config)
        context["form_status"] = status
        context["errors"] = errors
        return _agent_page(request, frame, agent, "configuration", context, status=422)
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
    return _agent_page(request, frame, agent, "runs", {"runs": rows})


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
    others = [e for e in events if e.kind != "text"]
    context = {"run": run, "transcript": transcript, "others": others}
    return _agent_page(request, frame, agent, "run", context)


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
