"""Agents: who answers, and with which runtime."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent
from rudder.domain import activity
from rudder.domain.errors import Conflict, Invalid, NotFound

AGENT_STATUSES = ("active", "paused")


def check_runtime(runtime_type: str, runtime_config: dict[str, Any]) -> dict[str, Any]:
    from rudder.runtimes import RUNTIME_TYPES, validate_runtime_config

    if runtime_type not in RUNTIME_TYPES:
        raise Invalid(
            f"runtime_type: unknown runtime {runtime_type!r}; choose one of {', '.join(RUNTIME_TYPES)}"
        )
    try:
        return validate_runtime_config(runtime_type, runtime_config)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


async def get_agent(session: AsyncSession, agent_id: str) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent not found")
    return agent


async def list_agents(session: AsyncSession, org_id: str) -> list[Agent]:
    rows = await session.scalars(
        select(Agent).where(Agent.org_id == org_id).order_by(Agent.created_at)
    )
    return list(rows)


async def find_agent_by_name(session: AsyncSession, org_id: str, name: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.org_id == org_id, Agent.name == name))


async def create_agent(
    session: AsyncSession,
    org_id: str,
    *,
    name: str,
    runtime_type: str,
    runtime_config: dict[str, Any],
    role: str = "general",
    title: str | None = None,
    instructions: str | None = None,
    actor: str,
) -> Agent:
    name = name.strip()
    if not name:
        raise Invalid("name: must not be empty")
    if await find_agent_by_name(session, org_id, name):
        raise Conflict(f"an agent named {name!r} already exists in this organization")
    config = check_runtime(runtime_type, runtime_config)
    agent = Agent(
        org_id=org_id,
        name=name,
        role=role,
        title=title,
        runtime_type=runtime_type,
        runtime_config=config,
        instructions=instructions,
    )
    session.add(agent)
    await session.flush()
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action="agent.created",
        entity_type="agent",
        entity_id=agent.id,
    )
    return agent


async def update_agent(
    session: AsyncSession, agent: Agent, changes: dict[str, Any], actor: str
) -> Agent:
    if "name" in changes and changes["name"] != agent.name:
        new_name = str(changes["name"]).strip()
        if not new_name:
            raise Invalid("name: must not be empty")
        if await find_agent_by_name(session, agent.org_id, new_name):
            raise Conflict(f"an agent named {new_name!r} already exists in this organization")
        agent.name = new_name
    if "status" in changes:
        if changes["status"] not in AGENT_STATUSES:
            raise Invalid(f"status: must be one of {', '.join(AGENT_STATUSES)}")
        agent.status = changes["status"]
    runtime_type = changes.get("runtime_type", agent.runtime_type)
    if "runtime_type" in changes or "runtime_config" in changes:
        config = changes.get("runtime_config")
        if config is None:
            config = agent.runtime_config if runtime_type == agent.runtime_type else {}
        agent.runtime_config = check_runtime(runtime_type, config)
        if runtime_type != agent.runtime_type:
            agent.is_example = False  # no longer the bundled example once switched
        agent.runtime_type = runtime_type
    for field in ("role", "title", "instructions"):
        if field in changes:
            setattr(agent, field, changes[field])
    activity.record(
        session,
        org_id=agent.org_id,
        actor=actor,
        action="agent.updated",
        entity_type="agent",
        entity_id=agent.id,
        details={"fields": sorted(changes)},
    )
    await session.flush()
    return agent
