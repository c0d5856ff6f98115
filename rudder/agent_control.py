"""Pause, resume and archive agents, and release what a budget held (database + run queue).

The status rules live in `rudder.domain.agent_status`; this module carries out what goes with
each transition: runs stopped on pause and archive, held runs queued again on resume, the bot
disconnected on archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import chat, texts
from rudder.db.models import Agent, Run
from rudder.domain import activity, budgets
from rudder.domain.agent_status import AgentStatus, PauseReason, transition
from rudder.domain.errors import Conflict
from rudder.live import org_topic
from rudder.services import Services

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 300.0  # a new month resumes budget-paused agents within this long


async def _active_runs(session: AsyncSession, agent_id: str) -> list[Run]:
    return list(
        await session.scalars(
            select(Run).where(Run.agent_id == agent_id, Run.status.in_(("queued", "running")))
        )
    )


async def submit(services: Services, pairs: list[tuple[str, str]]) -> None:
    for run_id, conversation_id in pairs:
        await services.runs.submit(run_id, conversation_id)


def _announce(services: Services, agent: Agent) -> None:
    services.live.publish(
        org_topic(agent.org_id),
        "agent.status",
        {"agent_id": agent.id, "status": agent.status, "pause_reason": agent.pause_reason},
    )


async def pause(
    services: Services,
    session: AsyncSession,
    agent: Agent,
    actor: str,
    reason: PauseReason = PauseReason.MANUAL,
) -> Agent:
    """Pause the agent; its runs in progress stop (queued ones end with the paused notice)."""
    if transition(agent, AgentStatus.PAUSED, reason):
        activity.record(
            session,
            org_id=agent.org_id,
            actor=actor,
            action="agent.paused",
            entity_type="agent",
            entity_id=agent.id,
            details={"pause_reason": reason.value},
        )
    running = [r for r in await _active_runs(session, agent.id) if r.status == "running"]
    await session.commit()
    await chat.cancel_runs(services, session, running)
    _announce(services, agent)
    return agent


async def resume(services: Services, session: AsyncSession, agent: Agent, actor: str) -> Agent:
    """Resume the agent and answer what its budget held; refused while still over budget."""
    if agent.status == AgentStatus.PAUSED and await budgets.over_hard_stop(session, agent):
        spent = await budgets.spent_cents(session, agent.org_id, agent.id)
        raise Conflict(
            texts.AGENT_OVER_BUDGET.format(
                agent=agent.name,
                spent=f"${spent / 100:.2f}",
                budget=f"${agent.budget_monthly_cents / 100:.2f}",
            )
        )
    changed = transition(agent, AgentStatus.ACTIVE)
    if changed:
        activity.record(
            session,
            org_id=agent.org_id,
            actor=actor,
            action="agent.resumed",
            entity_type="agent",
            entity_id=agent.id,
        )
    held = await budgets.requeue_held(session, agent.id)
    await budgets.resolve_incidents(session, agent.org_id)
    await session.commit()
    await submit(services, held)
    _announce(services, agent)
    return agent


async def archive(services: Services, session: AsyncSession, agent: Agent, actor: str) -> Agent:
    """Terminate the agent: no more runs, its bot disconnected, its history kept."""
    if agent.status == AgentStatus.TERMINATED:
        return agent
    transition(agent, AgentStatus.TERMINATED)
    activity.record(
        session,
        org_id=agent.org_id,
        actor=actor,
        action="agent.archived",
        entity_type="agent",
        entity_id=agent.id,
    )
    runs = await _active_runs(session, agent.id)
    held = list(
        await session.scalars(
            select(Run).where(Run.agent_id == agent.id, Run.status == budgets.HELD)
        )
    )
    await session.commit()
    await chat.cancel_runs(services, session, [*runs, *held])
    from rudder.feishu import connect

    await connect.disconnect(services, agent, actor=actor)
    _announce(services, agent)
    return agent


async def release_budgets(services: Services, org_id: str, actor: str) -> list[tuple[str, str]]:
    """After a budget change (or a new month): resume agents under budget, answer held runs."""
    async with services.sessions() as session:
        released = await budgets.release(session, org_id, actor)
        await session.commit()
    await submit(services, released)
    if released:
        services.live.publish(org_topic(org_id), "budget.updated", {"released": len(released)})
    return released


async def sweep(services: Services) -> None:
    """Once: every organization with a budget-paused agent is checked (a new month resumes)."""
    async with services.sessions() as session:
        org_ids = await budgets.orgs_with_budget_pauses(session)
    for org_id in org_ids:
        await release_budgets(services, org_id, "system")


async def sweep_forever(services: Services) -> None:
    while True:
        try:
            await sweep(services)
        except Exception:
            log.exception("budget sweep failed; trying again later")
        await asyncio.sleep(SWEEP_EVERY_S)


def start_sweeper(services: Services) -> None:
    if services.components.budget_sweeper is None:
        services.components.budget_sweeper = asyncio.create_task(
            sweep_forever(services), name="budget-sweeper"
        )


async def stop_sweeper(services: Services) -> None:
    task, services.components.budget_sweeper = services.components.budget_sweeper, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


__all__ = ["archive", "pause", "release_budgets", "resume", "sweep"]
