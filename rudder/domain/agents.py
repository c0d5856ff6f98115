"""Agents: who answers, and with which runtime."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, AgentConfigRevision, User
from rudder.domain import activity, orgs
from rudder.domain.agent_status import AgentStatus, parse_status, transition
from rudder.domain.errors import Conflict, Forbidden, Invalid, NotFound
from rudder.runtimes import policy as runtime_policy
from rudder.runtimes.policy import RuntimePolicy

AGENT_STATUSES = tuple(s.value for s in AgentStatus)
# What a configuration revision keeps (status is not configuration: pause/resume/archive).
CONFIG_KEYS = (
    "name",
    "role",
    "title",
    "capabilities",
    "instructions",
    "runtime_type",
    "runtime_config",
    "skills",
    "budget_monthly_cents",
    "budget_warn_percent",
    "budget_hard_stop",
)
BUDGET_KEYS = ("budget_monthly_cents", "budget_warn_percent", "budget_hard_stop")
BUDGET_ADMINS_ONLY = "only owners and admins can change an agent's budget"
MAX_BUDGET_CENTS = 2_000_000_000  # a 32-bit column
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


async def require_runtime_admin(
    session: AsyncSession, actor: str, org_id: str, message: str = RUNTIME_ADMINS_ONLY
) -> None:
    """Forbidden unless `actor` may choose runtimes in `org_id` (membership already checked).

    A runtime runs a command on this server (process, claude_local, codex_local) or makes the
    server call a URL (http, openai): that is an owner's or admin's decision, not a member's nor
    an agent's. `actor` is the activity-log label: `user:<id>` and `agent:<id>` come from
    requests; anything else (`cli`, `system`) is Rudder itself, run by whoever runs the server.
    """
    kind, _, actor_id = actor.partition(":")
    if kind == "agent":
        raise Forbidden(RUNTIME_NOT_FOR_AGENT_TOKENS if message == RUNTIME_ADMINS_ONLY else message)
    if kind != "user":
        return
    member = await orgs.membership(session, actor_id, org_id)
    if member is None or member.role not in RUNTIME_ADMIN_ROLES:
        raise Forbidden(message)


async def is_instance_admin(session: AsyncSession, actor: str, policy: RuntimePolicy) -> bool:
    """Whether `actor` (an activity-log label) decides for the whole deployment: an instance
    admin, local mode's implicit owner, or Rudder itself run by the operator (`cli`, `system`)."""
    kind, _, actor_id = actor.partition(":")
    if kind == "agent":
        return False
    if kind != "user":
        return True
    user = await session.get(User, actor_id)
    if user is None:
        return False
    return user.is_instance_admin or (policy.local_mode and user.email == orgs.LOCAL_OWNER_EMAIL)


async def _approval(
    session: AsyncSession,
    policy: RuntimePolicy,
    actor: str,
    runtime_type: str,
    config: dict[str, Any],
) -> str | None:
    """Check the operator's policy for a runtime being chosen; what `runtime_approved_by` becomes.

    Forbidden for a server-executing runtime the actor may not choose; Invalid for a URL into
    this server's own network. Returns the actor when it approved a server-executing runtime.
    """
    field = runtime_policy.URL_FIELDS.get(runtime_type)
    if field is not None:
        try:
            await runtime_policy.check_url(
                str(config.get(field, "")),
                f"runtime_config.{field}",
                allow_private=policy.allow_private_urls,
            )
        except runtime_policy.UrlRefused as exc:
            raise Invalid(str(exc)) from None
    if runtime_type not in runtime_policy.SERVER_RUNTIMES:
        return None
    admin = await is_instance_admin(session, actor, policy)
    problem = runtime_policy.choice_problem(policy, runtime_type, config, instance_admin=admin)
    if problem is not None:
        raise Forbidden(problem)
    return actor if admin or policy.server_runtimes == "allowlist" else None


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


def config_snapshot(agent: Agent) -> dict[str, Any]:
    """The agent's configuration as a revision keeps it (secrets are referenced by name)."""
    snap = {key: getattr(agent, key) for key in CONFIG_KEYS}
    snap["runtime_config"] = dict(snap["runtime_config"] or {})
    snap["skills"] = list(snap["skills"] or [])
    return snap


async def _record_revision(
    session: AsyncSession,
    agent: Agent,
    before: dict[str, Any],
    actor: str,
    source: str,
) -> AgentConfigRevision | None:
    after = config_snapshot(agent)
    changed = [k for k in CONFIG_KEYS if before.get(k) != after.get(k)]
    if not changed and source != "create":
        return None
    last = await session.scalar(
        select(func.max(AgentConfigRevision.rev)).where(AgentConfigRevision.agent_id == agent.id)
    )
    revision = AgentConfigRevision(
        org_id=agent.org_id,
        agent_id=agent.id,
        rev=(last or 0) + 1,
        actor=actor,
        source=source,
        changed_keys=changed,
        before_config=before,
        after_config=after,
    )
    session.add(revision)
    return revision


async def _check_skills(session: AsyncSession, org_id: str, names: Any) -> list[str]:
    from rudder.domain import skills as skills_domain

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Invalid("skills: must be a list of skill names")
    known = set(await skills_domain.names(session, org_id))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Invalid(
            f"skills: no skill {unknown[0]!r} in this organization's library"
            + (f" (known: {', '.join(sorted(known))})" if known else " (the library is empty)")
        )
    return list(dict.fromkeys(names))


def _check_budget(changes: dict[str, Any]) -> None:
    cents = changes.get("budget_monthly_cents")
    if cents is not None and (
        not isinstance(cents, int) or isinstance(cents, bool) or not 0 <= cents <= MAX_BUDGET_CENTS
    ):
        raise Invalid(
            "budget_monthly_cents: a whole number of cents from 0 to "
            f"{MAX_BUDGET_CENTS} ($20,000,000.00)"
        )
    warn = changes.get("budget_warn_percent")
    if warn is not None and (not isinstance(warn, int) or not 1 <= warn <= 100):
        raise Invalid("budget_warn_percent: must be between 1 and 100")


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
    capabilities: str | None = None,
    skills: list[str] | None = None,
    budget_monthly_cents: int = 0,
    budget_warn_percent: int = 80,
    budget_hard_stop: bool = True,
    actor: str,
    policy: RuntimePolicy | None = None,
) -> Agent:
    """`policy`: the operator's (RuntimePolicy.from_settings); without one, the strictest."""
    policy = policy or RuntimePolicy()
    # First: a member learns nothing from a 409 or 422 about a runtime they may not choose.
    if runtime_changes(None, {"runtime_type": runtime_type, "runtime_config": runtime_config}):
        await require_runtime_admin(session, actor, org_id)
    if budget_monthly_cents:
        await require_runtime_admin(session, actor, org_id, BUDGET_ADMINS_ONLY)
    name = name.strip()
    if not name:
        raise Invalid("name: must not be empty")
    if await find_agent_by_name(session, org_id, name):
        raise Conflict(f"an agent named {name!r} already exists in this organization")
    config = check_runtime(runtime_type, runtime_config)
    approved_by = await _approval(session, policy, actor, runtime_type, config)
    _check_budget(
        {"budget_monthly_cents": budget_monthly_cents, "budget_warn_percent": budget_warn_percent}
    )
    agent = Agent(
        org_id=org_id,
        name=name,
        role=role,
        title=title,
        capabilities=capabilities,
        runtime_type=runtime_type,
        runtime_config=config,
        instructions=instructions,
        runtime_approved_by=approved_by,
        skills=await _check_skills(session, org_id, skills or []),
        budget_monthly_cents=budget_monthly_cents,
        budget_warn_percent=budget_warn_percent,
        budget_hard_stop=budget_hard_stop,
        status=AgentStatus.ACTIVE.value,
    )
    session.add(agent)
    await session.flush()
    await _record_revision(session, agent, {}, actor, "create")
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action="agent.created",
        entity_type="agent",
        entity_id=agent.id,
        details={"runtime_type": runtime_type},
    )
    return agent


async def update_agent(
    session: AsyncSession,
    agent: Agent,
    changes: dict[str, Any],
    actor: str,
    policy: RuntimePolicy | None = None,
    *,
    source: str = "edit",
) -> Agent:
    policy = policy or RuntimePolicy()
    if agent.status == AgentStatus.TERMINATED:
        raise Conflict("the agent is archived; its configuration can no longer change")
    changed = runtime_changes(agent, changes)
    if changed:
        await require_runtime_admin(session, actor, agent.org_id)
    if any(k in changes and changes[k] != getattr(agent, k) for k in BUDGET_KEYS):
        await require_runtime_admin(session, actor, agent.org_id, BUDGET_ADMINS_ONLY)
    _check_budget(changes)
    before = config_snapshot(agent)
    if "name" in changes and changes["name"] != agent.name:
        new_name = str(changes["name"]).strip()
        if not new_name:
            raise Invalid("name: must not be empty")
        if await find_agent_by_name(session, agent.org_id, new_name):
            raise Conflict(f"an agent named {new_name!r} already exists in this organization")
        agent.name = new_name
    if "status" in changes and changes["status"] != agent.status:
        # Kept for callers that PATCH status; the transition table decides.
        transition(agent, parse_status(changes["status"]))
    runtime_type = changes.get("runtime_type", agent.runtime_type)
    if "runtime_type" in changes or "runtime_config" in changes:
        config = changes.get("runtime_config")
        if config is None:
            config = agent.runtime_config if runtime_type == agent.runtime_type else {}
        config = check_runtime(runtime_type, config)
        if changed:
            agent.runtime_approved_by = await _approval(
                session, policy, actor, runtime_type, config
            )
        elif (
            runtime_type in runtime_policy.SERVER_RUNTIMES
            and await is_instance_admin(session, actor, policy)
            and await orgs.is_manager(session, actor, agent.org_id)
        ):
            # An instance admin saving the runtime unchanged approves it (one stored before
            # approvals existed, or by someone who may no longer choose it).
            agent.runtime_approved_by = await _approval(
                session, policy, actor, runtime_type, config
            )
        agent.runtime_config = config
        if runtime_type != agent.runtime_type:
            agent.is_example = False  # no longer the bundled example once switched
        agent.runtime_type = runtime_type
    if "skills" in changes:
        agent.skills = await _check_skills(session, agent.org_id, changes["skills"])
    for field in (
        "role",
        "title",
        "instructions",
        "capabilities",
        "rerun_interrupted",
        *BUDGET_KEYS,
    ):
        if field in changes:
            setattr(agent, field, changes[field])
    revision = await _record_revision(session, agent, before, actor, source)
    activity.record(
        session,
        org_id=agent.org_id,
        actor=actor,
        action="agent.rolled_back" if source == "rollback" else "agent.updated",
        entity_type="agent",
        entity_id=agent.id,
        details={
            "fields": sorted(changes),
            **({"rev": revision.rev} if revision is not None else {}),
        },
    )
    await session.flush()
    return agent


async def revisions(session: AsyncSession, agent_id: str) -> list[AgentConfigRevision]:
    rows = await session.scalars(
        select(AgentConfigRevision)
        .where(AgentConfigRevision.agent_id == agent_id)
        .order_by(AgentConfigRevision.rev.desc())
    )
    return list(rows)


async def rollback(
    session: AsyncSession,
    agent: Agent,
    rev: int,
    actor: str,
    policy: RuntimePolicy | None = None,
) -> Agent:
    """Bring the configuration back to what it was right after revision `rev` (a new revision)."""
    revision = await session.scalar(
        select(AgentConfigRevision).where(
            AgentConfigRevision.agent_id == agent.id, AgentConfigRevision.rev == rev
        )
    )
    if revision is None:
        raise NotFound(f"revision {rev} not found")
    target = revision.after_config
    current = config_snapshot(agent)
    changes = {k: target[k] for k in CONFIG_KEYS if k in target and target[k] != current[k]}
    if "skills" in changes:
        from rudder.domain import skills as skills_domain

        # A skill deleted from the library since then cannot come back with the rollback.
        known = set(await skills_domain.names(session, agent.org_id))
        changes["skills"] = [n for n in changes["skills"] if n in known]
    return await update_agent(session, agent, changes, actor, policy, source="rollback")
