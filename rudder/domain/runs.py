"""Runs: one agent reply to one message, queued per conversation and in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Conversation, Message, Run, utcnow
from rudder.domain.errors import NotFound

# `held`: waiting for its agent to come back from a budget pause (rudder.domain.budgets).
ACTIVE_STATUSES = ("queued", "running", "held")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class RunQueue(Protocol):
    """Carries run ids to whatever executes them; the `runs` table is the source of truth."""

    async def submit(self, run_id: str, conversation_id: str) -> None: ...

    async def cancel(self, run_id: str) -> bool:
        """Stop the run if it executes here; True when it was found running locally."""
        ...


async def get_run(session: AsyncSession, run_id: str) -> Run:
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFound("run not found")
    return run


def new_run(conv: Conversation, trigger: Message | None, source: str) -> Run:
    return Run(
        org_id=conv.org_id,
        agent_id=conv.agent_id,
        conversation_id=conv.id,
        trigger_message_id=trigger.id if trigger else None,
        source=source,
        status="queued",
    )


async def active_runs(session: AsyncSession, conversation_id: str) -> Sequence[Run]:
    rows = await session.scalars(
        select(Run)
        .where(Run.conversation_id == conversation_id, Run.status.in_(ACTIVE_STATUSES))
        .order_by(Run.created_at)
    )
    return list(rows)


def request_cancel(run: Run) -> bool:
    """Mark a run for cancellation; a queued run ends here and now.

    False when there is nothing to stop: the run is final, or a stop was already requested
    and the run is only finishing (a second /stop must not claim to stop it again).
    """
    if run.status in FINAL_STATUSES or run.cancel_requested_at is not None:
        return False
    run.cancel_requested_at = run.cancel_requested_at or utcnow()
    if run.status in ("queued", "held"):
        run.status = "cancelled"
        run.finished_at = utcnow()
    return True
