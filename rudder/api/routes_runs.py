"""Runs: status, transcript, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from rudder import chat
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, load_run
from rudder.api.schemas import RunEventOut, RunOut
from rudder.db.models import Run, RunEventRow

router = APIRouter(prefix="/api")

# seq columns are 32-bit integers; a larger bound makes PostgreSQL fail the query (a 500).
MAX_SEQ = 2**31 - 1


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, actor: ActorDep, session: SessionDep) -> RunOut:
    return RunOut.model_validate(await load_run(session, actor, run_id))


@router.get("/runs/{run_id}/events", response_model=list[RunEventOut])
async def run_events(
    run_id: str,
    actor: ActorDep,
    session: SessionDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[RunEventOut]:
    await load_run(session, actor, run_id)
    rows = await session.scalars(
        select(RunEventRow)
        .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
        .order_by(RunEventRow.seq)
    )
    return [RunEventOut.model_validate(r) for r in rows]


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
async def cancel_run(
    run_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> RunOut:
    run = await load_run(session, actor, run_id)
    await chat.cancel_runs(services, session, [run])
    await session.refresh(run)
    return RunOut.model_validate(run)


@router.get("/agents/{agent_id}/runs", response_model=list[RunOut])
async def agent_runs(
    agent_id: str,
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunOut]:
    await load_agent(session, actor, agent_id)
    rows = await session.scalars(
        select(Run).where(Run.agent_id == agent_id).order_by(Run.created_at.desc()).limit(limit)
    )
    return [RunOut.model_validate(r) for r in rows]
