"""Agents of an organization: profile, runtime, skills, budget, status and revisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import agent_control
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, require_org
from rudder.api.schemas import (
    AgentIn,
    AgentOut,
    AgentPatch,
    PauseIn,
    RevisionOut,
    error_responses,
)
from rudder.db.models import Agent
from rudder.domain import agents, budgets
from rudder.domain.agent_status import AgentStatus, PauseReason
from rudder.runtimes.policy import RuntimePolicy

router = APIRouter(prefix="/api")


async def agent_out(session: AsyncSession, agent: Agent, spent: int | None = None) -> AgentOut:
    out = AgentOut.model_validate(agent)
    out.spent_monthly_cents = (
        spent if spent is not None else await budgets.spent_cents(session, agent.org_id, agent.id)
    )
    return out


@router.get("/orgs/{org_id}/agents", response_model=list[AgentOut])
async def list_agents(org_id: str, actor: ActorDep, session: SessionDep) -> list[AgentOut]:
    await require_org(session, actor, org_id)
    spent = await budgets.spent_by_agent(session, org_id)
    return [
        await agent_out(session, a, spent.get(a.id, 0))
        for a in await agents.list_agents(session, org_id)
    ]


@router.post(
    "/orgs/{org_id}/agents",
    response_model=AgentOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
async def create_agent(
    org_id: str, body: AgentIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    await require_org(session, actor, org_id)
    # Any runtime but the bundled example runs a command or calls a URL, and a budget is
    # money: owners and admins only (checked by the domain, so every caller gets the rule); a
    # runtime that runs on this server is the operator's decision (RUDDER_SERVER_RUNTIMES).
    agent = await agents.create_agent(
        session,
        org_id,
        name=body.name,
        runtime_type=body.runtime_type,
        runtime_config=body.runtime_config,
        role=body.role,
        title=body.title,
        instructions=body.instructions,
        capabilities=body.capabilities,
        skills=body.skills,
        budget_monthly_cents=body.budget_monthly_cents,
        budget_warn_percent=body.budget_warn_percent,
        budget_hard_stop=body.budget_hard_stop,
        actor=actor.label,
        policy=RuntimePolicy.from_settings(services.settings),
    )
    await session.commit()
    return await agent_out(session, agent, 0)


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=error_responses(404))
async def get_agent(agent_id: str, actor: ActorDep, session: SessionDep) -> AgentOut:
    return await agent_out(session, await load_agent(session, actor, agent_id))


@router.patch(
    "/agents/{agent_id}", response_model=AgentOut, responses=error_responses(403, 404, 409, 422)
)
async def patch_agent(
    agent_id: str, body: AgentPatch, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    agent = await load_agent(session, actor, agent_id)
    changes = body.model_dump(exclude_unset=True)
    new_status = changes.pop("status", None)
    # A new runtime (command or URL) or budget is for owners and admins only: 403 otherwise.
    policy = RuntimePolicy.from_settings(services.settings)
    await agents.update_agent(session, agent, changes, actor.label, policy)
    await session.commit()
    if any(k in changes for k in agents.BUDGET_KEYS):
        # A raised budget resumes a budget-paused agent and answers what it held.
        await agent_control.release_budgets(services, agent.org_id, actor.label)
        await session.refresh(agent)
    if new_status is not None and new_status != agent.status:
        await _set_status(services, session, agent, AgentStatus(new_status), actor.label)
    return await agent_out(session, agent)


async def _set_status(
    services: ServicesDep, session: AsyncSession, agent: Agent, to: AgentStatus, actor: str
) -> None:
    if to == AgentStatus.PAUSED:
        await agent_control.pause(services, session, agent, actor)
    elif to == AgentStatus.ACTIVE:
        await agent_control.resume(services, session, agent, actor)
    else:
        await agents.require_runtime_admin(session, actor, agent.org_id, ARCHIVE_ADMINS_ONLY)
        await agent_control.archive(services, session, agent, actor)


ARCHIVE_ADMINS_ONLY = "only owners and admins can archive an agent"


@router.post(
    "/agents/{agent_id}/pause", response_model=AgentOut, responses=error_responses(404, 409)
)
async def pause_agent(
    agent_id: str,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    body: PauseIn | None = None,
) -> AgentOut:
    agent = await load_agent(session, actor, agent_id)
    reason = PauseReason((body or PauseIn()).reason)
    await agent_control.pause(services, session, agent, actor.label, reason)
    return await agent_out(session, agent)


@router.post(
    "/agents/{agent_id}/resume", response_model=AgentOut, responses=error_responses(404, 409)
)
async def resume_agent(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    agent = await load_agent(session, actor, agent_id)
    await agent_control.resume(services, session, agent, actor.label)
    return await agent_out(session, agent)


@router.post(
    "/agents/{agent_id}/archive", response_model=AgentOut, responses=error_responses(403, 404)
)
async def archive_agent(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    """Terminate the agent: no more runs, its bot disconnected, its history kept."""
    agent = await load_agent(session, actor, agent_id)
    await _set_status(services, session, agent, AgentStatus.TERMINATED, actor.label)
    return await agent_out(session, agent)


@router.get(
    "/agents/{agent_id}/revisions",
    response_model=list[RevisionOut],
    responses=error_responses(404),
)
async def list_revisions(agent_id: str, actor: ActorDep, session: SessionDep) -> list[RevisionOut]:
    agent = await load_agent(session, actor, agent_id)
    return [RevisionOut.model_validate(r) for r in await agents.revisions(session, agent.id)]


@router.post(
    "/agents/{agent_id}/revisions/{rev}/rollback",
    response_model=AgentOut,
    responses=error_responses(403, 404, 409, 422),
)
async def rollback_revision(
    agent_id: str,
    rev: Annotated[int, Path(ge=1, le=2**31 - 1)],
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> AgentOut:
    """Bring the configuration back to what it was right after revision `rev`."""
    agent = await load_agent(session, actor, agent_id)
    await agents.rollback(
        session, agent, rev, actor.label, RuntimePolicy.from_settings(services.settings)
    )
    await session.commit()
    await agent_control.release_budgets(services, agent.org_id, actor.label)
    await session.refresh(agent)
    return await agent_out(session, agent)


def _include_subrouters() -> None:
    from rudder.api import routes_budgets, routes_skills

    router.include_router(routes_budgets.router)
    router.include_router(routes_skills.router)


_include_subrouters()
