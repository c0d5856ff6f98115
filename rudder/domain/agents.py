"""Agents: who answers, and with which runtime."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent
from rudder.domain import activity, orgs
from rudder.domain.errors import Conflict, Forbidden, Invalid, NotFound

AGENT_STATUSES = ("active", "paused")
RUNTIME_ADMIN_ROLES = ("owner", "admin")
RUNTIME_ADMINS_ONLY = (
    "only owners and admins can choose an agent's runtime: it runs a command on this server "
    "or calls a URL from it"
)
RUNTIME_NOT_FOR_AGENT_TOKENS = (
    "an agent token cannot choose an agent's runtime: it runs a command on this server or "
    "calls a URL from it; sign in as an owner or admin"
)


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


def is_bundled_example(runtime_type: str, runtime_config: dict[str, Any]) -> bool:
    """The bundled offline example agent's runtime: a fixed command anyone may choose."""
    from rudder.runtimes import DEFAULT_AGENT_RUNTIME

    example_type, example_config = DEFAULT_AGENT_RUNTIME
    return runtime_type == example_type and runtime_config == check_runtime(
        example_type, dict(example_config)
    )


def runtime_changes(agent: Agent | None, changes: dict[str, Any]) -> bool:
    """Whether `changes` choose a runtime (a command to run, a URL to call) other than the
    agent's current one. Resending the current runtime (a form that posts every field) is no
    change. An invalid config counts as none here: validation refuses it afterwards.
    """
    if agent is None:
        runtime_type = str(changes.get("runtime_type") or "")
        try:
            config = check_runtime(runtime_type, dict(changes.get("runtime_config") or {}))
        except Invalid:
            return True
        return not is_bundled_example(runtime_type, config)
    if "runtime_type" not in changes and "runtime_config" not in changes:
        return False
    runtime_type = changes.get("runtime_type") or agent.runtime_type
    if runtime_type != agent.runtime_type:
        return True
    new_config = changes.get("runtime_config")
    if new_config is None:
        return False
    try:
        return check_runtime(runtime_type, dict(new_config)) != check_runtime(
            agent.runtime_type, dict(agent.runtime_config)
        )
    except Invalid:
        return True


async def require_runtime_admin(session: AsyncSession, actor: str, org_id: str) -> None:
    """Forbidden unless `actor` may choose runtimes in `org_id` (membership already checked).

    A runtime runs a command on this server (process, claude_local, codex_local) or makes the
    server call a URL (http, openai): that is an owner's or admin's decision, not a member's nor
    an agent's. `actor` is the activity-log label: `user:<id>` and `agent:<id>` come from
    requests; anything else (`cli`, `system`) is Rudder itself, run by whoever runs the server.
    """
    kind, _, actor_id = actor.partition(":")
    if kind == "agent":
        raise Forbidden(RUNTIME_NOT_FOR_AGENT_TOKENS)
    if kind != "user":
        return
    member = await orgs.membership(session, actor_id, org_id)
    if member is None or member.role not in RUNTIME_ADMIN_ROLES:
        raise Forbidden(RUNTIME_ADMINS_ONLY)


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
    # First: a member learns nothing from a 409 or 422 about a runtime they may not choose.
    if runtime_changes(None, {"runtime_type": runtime_type, "runtime_config": runtime_config}):
        await require_runtime_admin(session, actor, org_id)
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
    if runtime_changes(agent, changes):
        await require_runtime_admin(session, actor, agent.org_id)
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
    for field in ("role", "title", "instructions", "rerun_interrupted"):
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
