"""The Costs report: spend per agent and calendar month (UTC), with tokens and run counts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, BudgetIncident, ModelPrice, Run, utcnow
from rudder.domain.budgets import DEFAULT_PRICES, month_bounds, month_of


def last_months(count: int) -> list[str]:
    now = utcnow()
    year, mon = now.year, now.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return list(reversed(out))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class CostRow:
    month: str
    agent_id: str
    agent_name: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost_cents: int


@dataclass(frozen=True, slots=True)
class Costs:
    months: list[str]
    rows: list[CostRow]
    total_cents_by_month: dict[str, int]


@dataclass(frozen=True, slots=True)
class Price:
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    source: str  # organization | default


async def report(session: AsyncSession, org_id: str, months: int) -> Costs:
    keys = last_months(months)
    start, _ = month_bounds(keys[0])
    _, end = month_bounds(keys[-1])
    names = dict(
        (await session.execute(select(Agent.id, Agent.name).where(Agent.org_id == org_id))).all()
    )
    # Aggregated here rather than in SQL: tokens live in the runs' JSON usage, which SQLite and
    # PostgreSQL query differently; a month of an organization's runs is a modest scan.
    acc: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: {"runs": 0, "in": 0, "out": 0, "usd": 0.0}
    )
    rows = await session.execute(
        select(Run.agent_id, Run.finished_at, Run.cost_usd, Run.usage).where(
            Run.org_id == org_id, Run.finished_at >= start, Run.finished_at < end
        )
    )
    for agent_id, finished_at, cost, usage in rows.all():
        slot = acc[(month_of(finished_at), agent_id)]
        slot["runs"] += 1
        slot["in"] += _int((usage or {}).get("input_tokens"))
        slot["out"] += _int((usage or {}).get("output_tokens"))
        slot["usd"] += float(cost or 0.0)
    out_rows = [
        CostRow(
            month=month,
            agent_id=agent_id,
            agent_name=names.get(agent_id, agent_id),
            runs=int(v["runs"]),
            input_tokens=int(v["in"]),
            output_tokens=int(v["out"]),
            cost_cents=round(v["usd"] * 100),
        )
        for (month, agent_id), v in sorted(acc.items())
    ]
    totals = {m: 0 for m in keys}
    for row in out_rows:
        totals[row.month] += row.cost_cents
    return Costs(months=keys, rows=out_rows, total_cents_by_month=totals)


async def price_table(session: AsyncSession, org_id: str) -> list[Price]:
    own = {
        p.model: p
        for p in await session.scalars(select(ModelPrice).where(ModelPrice.org_id == org_id))
    }
    out = [
        Price(
            model=m,
            input_usd_per_mtok=p.input_usd_per_mtok,
            output_usd_per_mtok=p.output_usd_per_mtok,
            cached_input_usd_per_mtok=p.cached_input_usd_per_mtok,
            source="organization",
        )
        for m, p in sorted(own.items())
    ]
    for model, (p_in, p_out, p_cached) in sorted(DEFAULT_PRICES.items()):
        if model not in own:
            out.append(
                Price(
                    model=model,
                    input_usd_per_mtok=p_in,
                    output_usd_per_mtok=p_out,
                    cached_input_usd_per_mtok=p_cached,
                    source="default",
                )
            )
    return out


async def all_incidents(session: AsyncSession, org_id: str) -> list[BudgetIncident]:
    return list(
        await session.scalars(
            select(BudgetIncident)
            .where(BudgetIncident.org_id == org_id)
            .order_by(BudgetIncident.created_at.desc())
        )
    )
