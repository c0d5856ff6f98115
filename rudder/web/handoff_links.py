"""The links between runs of a hand-off chain (rudder/feishu/handoff.py), as pages show them:
on a run's page, and beside the messages of a conversation in Messenger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, Message, Run


@dataclass(frozen=True, slots=True)
class RunLink:
    run_id: str
    agent_id: str
    agent_name: str
    conversation_id: str
    hop: int

    @property
    def url(self) -> str:
        return f"/agents/{self.agent_id}/runs/{self.run_id}"


async def _links(session: AsyncSession, runs: list[Run]) -> dict[str, RunLink]:
    names = dict(
        (
            await session.execute(
                select(Agent.id, Agent.name).where(Agent.id.in_({r.agent_id for r in runs}))
            )
        ).all()
    )
    return {
        r.id: RunLink(
            r.id, r.agent_id, names.get(r.agent_id, "?"), r.conversation_id, r.handoff_hop
        )
        for r in runs
    }


async def link_of(session: AsyncSession, run_id: str | None) -> RunLink | None:
    found = await session.get(Run, run_id) if run_id else None
    return (await _links(session, [found]))[found.id] if found is not None else None


async def handed_from(session: AsyncSession, run: Run) -> RunLink | None:
    return await link_of(session, run.handed_from_run_id)


async def handed_to(session: AsyncSession, run_ids: list[str]) -> dict[str, list[RunLink]]:
    """The runs each of `run_ids` handed the turn to (at most one each, today)."""
    if not run_ids:
        return {}
    after = list(await session.scalars(select(Run).where(Run.handed_from_run_id.in_(run_ids))))
    links = await _links(session, after) if after else {}
    found: dict[str, list[RunLink]] = {}
    for r in after:
        assert r.handed_from_run_id is not None
        found.setdefault(r.handed_from_run_id, []).append(links[r.id])
    return found


@dataclass(frozen=True, slots=True)
class MessageLinks:
    """Beside a message: the run that handed it over (a hand-off's message), or the runs its
    reply handed to (an agent's reply)."""

    handed_from: RunLink | None
    handed_to: list[RunLink]


async def for_messages(session: AsyncSession, messages: list[Message]) -> dict[str, MessageLinks]:
    run_ids = [m.run_id for m in messages if m.run_id]
    if not run_ids:
        return {}
    runs = {r.id: r for r in await session.scalars(select(Run).where(Run.id.in_(run_ids)))}
    sources = [
        r
        for r in await session.scalars(
            select(Run).where(
                Run.id.in_({r.handed_from_run_id for r in runs.values() if r.handed_from_run_id})
            )
        )
    ]
    source_links = await _links(session, sources) if sources else {}
    to = await handed_to(session, list(runs))
    found: dict[str, MessageLinks] = {}
    for m in messages:
        run = runs.get(m.run_id or "")
        if run is None:
            continue
        origin = (
            source_links.get(run.handed_from_run_id or "")
            if m.role == "user" and m.author_agent_id
            else None
        )
        onward = to.get(run.id, []) if m.role == "assistant" else []
        if origin is not None or onward:
            found[m.id] = MessageLinks(origin, onward)
    return found
