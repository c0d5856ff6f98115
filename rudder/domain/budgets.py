"""Monthly budgets with a warning and a hard stop, per agent and per organization.

Two hooks, called from one place each in the run executor:

- `before_run` — just before a run starts: an agent paused for its budget does not run; the
  run is *held* (status `held`), its message kept, and answered when the agent resumes.
- `after_run` — when a run finishes: the run's cost is priced (the runtime's own `cost_usd`, or
  tokens × the organization's model price table), the month's spend is summed, and crossing
  the warning opens a `warning` incident, crossing the hard stop opens a `hard_stop` incident
  and pauses the agent (or, for the organization's budget, its agents) with reason `budget`.

Spend is the sum of the runs' own costs in the calendar month (UTC); nothing is cumulative, so a
new month starts at zero by itself. `release` resumes budget-paused agents that are under their
budgets again (raised, or a new month) and queues their held runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, BudgetIncident, ModelPrice, Organization, Run, utcnow
from rudder.domain import activity
from rudder.domain.agent_status import AgentStatus, PauseReason, transition

HELD = "held"
# Prices in USD per million tokens, used when an organization's table has no row for a model.
# Operators edit their own table (PUT /api/orgs/{id}/model-prices/{model}); rows there win.
DEFAULT_PRICES: dict[str, tuple[float, float, float]] = {
    # model: (input, output, cached input)
    "claude-opus-4": (15.0, 75.0, 1.5),
    "claude-sonnet-4": (3.0, 15.0, 0.3),
    "claude-haiku-4": (1.0, 5.0, 0.1),
    "gpt-5": (1.25, 10.0, 0.125),
    "gpt-5-mini": (0.25, 2.0, 0.025),
    "gpt-4.1": (2.0, 8.0, 0.5),
    "gpt-4.1-mini": (0.4, 1.6, 0.1),
    "gpt-4o": (2.5, 10.0, 1.25),
    "gpt-4o-mini": (0.15, 0.6, 0.075),
}


def month_of(now: datetime | None = None) -> str:
    now = now or utcnow()
    return f"{now.year:04d}-{now.month:02d}"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


async def price_of(session: AsyncSession, org_id: str, model: str) -> tuple[float, float, float]:
    """The price of `model` (the longest matching prefix, so dated model ids match too)."""
    rows = {
        p.model: (p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok)
        for p in await session.scalars(select(ModelPrice).where(ModelPrice.org_id == org_id))
    }
    for table in (rows, DEFAULT_PRICES):
        matches = [m for m in table if model == m or model.startswith(m)]
        if matches:
            return table[max(matches, key=len)]
    return (0.0, 0.0, 0.0)


async def run_cost(
    session: AsyncSession, org_id: str, usage: dict[str, Any], runtime_config: dict[str, Any]
) -> float | None:
    """What one run cost in USD: the runtime's figure if it gave one, else tokens × price."""
    reported = _number(usage.get("cost_usd"))
    if reported is not None:
        return reported
    tokens_in = _number(usage.get("input_tokens")) or 0.0
    tokens_out = _number(usage.get("output_tokens")) or 0.0
    cached = _number(usage.get("cached_input_tokens")) or 0.0
    if not tokens_in and not tokens_out:
        return None
    model = usage.get("model") or runtime_config.get("model")
    if not isinstance(model, str) or not model:
        return None
    p_in, p_out, p_cached = await price_of(session, org_id, model)
    uncached = max(tokens_in - cached, 0.0)
    return (uncached * p_in + cached * p_cached + tokens_out * p_out) / 1_000_000


async def spent_cents(
    session: AsyncSession, org_id: str, agent_id: str | None = None, month: str | None = None
) -> int:
    start, end = month_bounds(month or month_of())
    q = select(func.coalesce(func.sum(Run.cost_usd), 0.0)).where(
        Run.org_id == org_id, Run.finished_at >= start, Run.finished_at < end
    )
    if agent_id is not None:
        q = q.where(Run.agent_id == agent_id)
    total = await session.scalar(q)
    return round(float(total or 0.0) * 100)


async def spent_by_agent(
    session: AsyncSession, org_id: str, month: str | None = None
) -> dict[str, int]:
    start, end = month_bounds(month or month_of())
    rows = await session.execute(
        select(Run.agent_id, func.coalesce(func.sum(Run.cost_usd), 0.0))
        .where(Run.org_id == org_id, Run.finished_at >= start, Run.finished_at < end)
        .group_by(Run.agent_id)
    )
    return {agent_id: round(float(total or 0.0) * 100) for agent_id, total in rows.all()}


@dataclass
class Enforcement:
    """What `after_run` decided, for the executor to carry out after its commit."""

    cost_usd: float | None = None
    paused_agent_ids: list[str] = field(default_factory=list)
    cancel_run_ids: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)


async def _open_incident(
    session: AsyncSession,
    *,
    org_id: str,
    scope_type: str,
    scope_id: str,
    agent_id: str | None,
    kind: str,
    month: str,
    amount: int,
    spent: int,
) -> BudgetIncident | None:
    existing = await session.scalar(
        select(BudgetIncident).where(
            BudgetIncident.scope_type == scope_type,
            BudgetIncident.scope_id == scope_id,
            BudgetIncident.month == month,
            BudgetIncident.kind == kind,
        )
    )
    if existing is not None:
        if existing.status == "open":
            existing.spent_cents = spent
            return None
        # Resolved by raising the budget, and now crossed again: open it again.
        if existing.amount_cents == amount:
            return None
        existing.status, existing.resolved_at = "open", None
        existing.amount_cents, existing.spent_cents = amount, spent
        return existing
    incident = BudgetIncident(
        org_id=org_id,
        scope_type=scope_type,
        scope_id=scope_id,
        agent_id=agent_id,
        kind=kind,
        month=month,
        amount_cents=amount,
        spent_cents=spent,
    )
    try:
        # Two runs finishing at once (another instance) may both cross the line: the unique
        # constraint keeps one incident, and the run's own final write must not fail for it.
        async with session.begin_nested():
            session.add(incident)
    except IntegrityError:
        return None
    return incident


def _incident_view(i: BudgetIncident) -> dict[str, Any]:
    return {
        "id": i.id,
        "scope_type": i.scope_type,
        "scope_id": i.scope_id,
        "agent_id": i.agent_id,
        "kind": i.kind,
        "month": i.month,
        "amount_cents": i.amount_cents,
        "spent_cents": i.spent_cents,
        "status": i.status,
    }


async def _check_scope(
    session: AsyncSession,
    enforcement: Enforcement,
    *,
    org_id: str,
    scope_type: str,
    scope_id: str,
    agent_id: str | None,
    amount: int,
    warn_percent: int,
    hard_stop: bool,
    spent: int,
    month: str,
) -> bool:
    """Open the incidents `spent` calls for; True when the hard stop is reached."""
    if amount <= 0:
        return False

    async def open_(kind: str) -> BudgetIncident | None:
        return await _open_incident(
            session,
            org_id=org_id,
            scope_type=scope_type,
            scope_id=scope_id,
            agent_id=agent_id,
            kind=kind,
            month=month,
            amount=amount,
            spent=spent,
        )

    if spent * 100 >= amount * warn_percent and spent < amount:
        opened = await open_("warning")
        if opened is not None:
            await session.flush()
            enforcement.incidents.append(_incident_view(opened))
    if spent >= amount:
        opened = await open_("hard_stop" if hard_stop else "exceeded")
        if opened is not None:
            await session.flush()
            enforcement.incidents.append(_incident_view(opened))
        return hard_stop
    return False


async def _pause_for_budget(session: AsyncSession, agent: Agent, enforcement: Enforcement) -> None:
    if agent.status != AgentStatus.ACTIVE:
        return
    transition(agent, AgentStatus.PAUSED, PauseReason.BUDGET)
    enforcement.paused_agent_ids.append(agent.id)
    activity.record(
        session,
        org_id=agent.org_id,
        actor="system",
        action="agent.paused",
        entity_type="agent",
        entity_id=agent.id,
        details={"pause_reason": PauseReason.BUDGET.value},
    )
    # Its runs stop: running ones are cancelled, queued ones are held for after the resume.
    for run in await session.scalars(
        select(Run).where(Run.agent_id == agent.id, Run.status.in_(("queued", "running")))
    ):
        if run.status == "queued":
            run.status = HELD
        elif run.cancel_requested_at is None:
            run.cancel_requested_at = utcnow()
            enforcement.cancel_run_ids.append(run.id)


async def after_run(session: AsyncSession, run: Run) -> Enforcement:
    """Price `run` (finished, in this transaction) and apply its agent's and org's budgets."""
    enforcement = Enforcement()
    agent = await session.get(Agent, run.agent_id)
    org = await session.get(Organization, run.org_id)
    if agent is None or org is None:
        return enforcement
    cost = await run_cost(session, run.org_id, dict(run.usage or {}), dict(agent.runtime_config))
    run.cost_usd = cost
    enforcement.cost_usd = cost
    if not cost:
        return enforcement
    await session.flush()
    month = month_of(run.finished_at)
    agent_spent = await spent_cents(session, run.org_id, agent.id, month)
    if await _check_scope(
        session,
        enforcement,
        org_id=org.id,
        scope_type="agent",
        scope_id=agent.id,
        agent_id=agent.id,
        amount=agent.budget_monthly_cents,
        warn_percent=agent.budget_warn_percent,
        hard_stop=agent.budget_hard_stop,
        spent=agent_spent,
        month=month,
    ):
        await _pause_for_budget(session, agent, enforcement)
    org_spent = await spent_cents(session, run.org_id, None, month)
    if await _check_scope(
        session,
        enforcement,
        org_id=org.id,
        scope_type="organization",
        scope_id=org.id,
        agent_id=None,
        amount=org.budget_monthly_cents,
        warn_percent=org.budget_warn_percent,
        hard_stop=org.budget_hard_stop,
        spent=org_spent,
        month=month,
    ):
        for other in await session.scalars(
            select(Agent).where(Agent.org_id == org.id, Agent.status == AgentStatus.ACTIVE)
        ):
            await _pause_for_budget(session, other, enforcement)
    return enforcement


async def over_hard_stop(session: AsyncSession, agent: Agent) -> str | None:
    """Why `agent` may not run for budget reasons this month, or None."""
    month = month_of()
    if (
        agent.budget_hard_stop
        and agent.budget_monthly_cents > 0
        and await spent_cents(session, agent.org_id, agent.id, month) >= agent.budget_monthly_cents
    ):
        return "agent"
    org = await session.get(Organization, agent.org_id)
    if (
        org is not None
        and org.budget_hard_stop
        and org.budget_monthly_cents > 0
        and await spent_cents(session, agent.org_id, None, month) >= org.budget_monthly_cents
    ):
        return "organization"
    return None


def is_budget_paused(agent: Agent) -> bool:
    return agent.status == AgentStatus.PAUSED and agent.pause_reason == PauseReason.BUDGET


async def before_run(session: AsyncSession, run: Run, agent: Agent) -> bool:
    """True when `run` must be held instead of started: its agent is paused for its budget,
    or is over a hard-stop budget already (lowered below this month's spend) and is paused now.
    """
    if (
        agent.status == AgentStatus.ACTIVE
        and await _has_hard_stop(session, agent)
        and await over_hard_stop(session, agent)
    ):
        transition(agent, AgentStatus.PAUSED, PauseReason.BUDGET)
        activity.record(
            session,
            org_id=agent.org_id,
            actor="system",
            action="agent.paused",
            entity_type="agent",
            entity_id=agent.id,
            details={"pause_reason": PauseReason.BUDGET.value},
        )
    if not is_budget_paused(agent):
        return False
    run.status = HELD
    return True


async def _has_hard_stop(session: AsyncSession, agent: Agent) -> bool:
    """Whether any hard-stop budget applies (so runs without budgets cost no extra queries)."""
    if agent.budget_hard_stop and agent.budget_monthly_cents > 0:
        return True
    org = await session.get(Organization, agent.org_id)
    return bool(org is not None and org.budget_hard_stop and org.budget_monthly_cents > 0)


async def release(session: AsyncSession, org_id: str, actor: str) -> list[tuple[str, str]]:
    """Resume the org's budget-paused agents that are under their budgets again.

    Returns (run_id, conversation_id) of the held runs now queued again, oldest first, for the
    caller to submit after its commit. Incidents of budgets no longer exceeded are resolved.
    """
    resumed: list[tuple[str, str]] = []
    for agent in await session.scalars(
        select(Agent).where(Agent.org_id == org_id, Agent.status == AgentStatus.PAUSED)
    ):
        if agent.pause_reason != PauseReason.BUDGET or await over_hard_stop(session, agent):
            continue
        transition(agent, AgentStatus.ACTIVE)
        activity.record(
            session,
            org_id=org_id,
            actor=actor,
            action="agent.resumed",
            entity_type="agent",
            entity_id=agent.id,
            details={"after": "budget"},
        )
        resumed.extend(await requeue_held(session, agent.id))
    await resolve_incidents(session, org_id)
    return resumed


async def requeue_held(session: AsyncSession, agent_id: str) -> list[tuple[str, str]]:
    rows = list(
        await session.scalars(
            select(Run).where(Run.agent_id == agent_id, Run.status == HELD).order_by(Run.created_at)
        )
    )
    for run in rows:
        run.status = "queued"
    return [(r.id, r.conversation_id) for r in rows]


async def resolve_incidents(session: AsyncSession, org_id: str) -> None:
    """Close the open incidents whose budget is no longer at that level (raised, new month)."""
    month = month_of()
    for incident in await session.scalars(
        select(BudgetIncident).where(
            BudgetIncident.org_id == org_id, BudgetIncident.status == "open"
        )
    ):
        if incident.month != month:
            incident.status, incident.resolved_at = "resolved", utcnow()
            continue
        if incident.scope_type == "agent":
            agent = await session.get(Agent, incident.scope_id)
            if agent is None:
                continue
            amount, warn = agent.budget_monthly_cents, agent.budget_warn_percent
            spent = await spent_cents(session, org_id, agent.id, month)
        else:
            org = await session.get(Organization, org_id)
            if org is None:
                continue
            amount, warn = org.budget_monthly_cents, org.budget_warn_percent
            spent = await spent_cents(session, org_id, None, month)
        still = amount > 0 and (
            spent >= amount if incident.kind != "warning" else spent * 100 >= amount * warn
        )
        if not still:
            incident.status, incident.resolved_at = "resolved", utcnow()


async def open_incidents(session: AsyncSession, org_id: str) -> list[BudgetIncident]:
    return list(
        await session.scalars(
            select(BudgetIncident)
            .where(BudgetIncident.org_id == org_id, BudgetIncident.status == "open")
            .order_by(BudgetIncident.created_at.desc())
        )
    )


async def orgs_with_budget_pauses(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(Agent.org_id)
        .where(Agent.status == AgentStatus.PAUSED, Agent.pause_reason == PauseReason.BUDGET)
        .distinct()
    )
    return list(rows)


async def held_count(session: AsyncSession, conversation_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count(Run.id)).where(
                Run.conversation_id == conversation_id, Run.status == HELD
            )
        )
        or 0
    )
