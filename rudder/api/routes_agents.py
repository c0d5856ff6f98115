"""Agents of an organization."""

from __future__ import annotations

from fastapi import APIRouter, status

from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, require_org
from rudder.api.schemas import AgentIn, AgentOut, AgentPatch, error_responses
from rudder.domain import agents
from rudder.runtimes.policy import RuntimePolicy

router = APIRouter(prefix="/api")


@router.get("/orgs/{org_id}/agents", response_model=list[AgentOut])
async def list_agents(org_id: str, actor: ActorDep, session: SessionDep) -> list[AgentOut]:
    await require_org(session, actor, org_id)
    return [AgentOut.model_validate(a) for a in await agents.list_agents(session, org_id)]


@router.post(
    "/orgs/{org_id}/agents",
    response_model=AgentOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 409),
)
async def create_agent(
    org_id: str, body: AgentIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    await require_org(session, actor, org_id)
    # Any runtime but the bundled example runs a command or calls a URL: owners and admins only
    # (checked by the domain, so the web form and every other caller get the same rule); one
    # that runs on this server is the operator's decision (RUDDER_SERVER_RUNTIMES).
    agent = await agents.create_agent(
        session,
        org_id,
        name=body.name,
        runtime_type=body.runtime_type,
        runtime_config=body.runtime_config,
        role=body.role,
        title=body.title,
        instructions=body.instructions,
        actor=actor.label,
        policy=RuntimePolicy.from_settings(services.settings),
    )
    await session.commit()
    return AgentOut.model_validate(agent)


@router.get("/agents/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, actor: ActorDep, session: SessionDep) -> AgentOut:
    return AgentOut.model_validate(await load_agent(session, actor, agent_id))


@router.patch("/agents/{agent_id}", response_model=AgentOut, responses=error_responses(403, 409))
async def patch_agent(
    agent_id: str, body: AgentPatch, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> AgentOut:
    agent = await load_agent(session, actor, agent_id)
    # A new runtime (command or URL) is for owners and admins only: 403 for members and agents.
    policy = RuntimePolicy.from_settings(services.settings)
    changes = body.model_dump(exclude_unset=True)
    await agents.update_agent(session, agent, changes, actor.label, policy)
    await session.commit()
    return AgentOut.model_validate(agent)
