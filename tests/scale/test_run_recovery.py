"""On PostgreSQL a crash can strand a run in two places the stalled-worker sweep alone misses:
the run was recorded but its job never deferred, or a worker took the job and died before it
marked the run `running`. Both runs must still answer, and neither may fail as interrupted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from rudder import texts
from rudder.db.models import Conversation, Message, Run, utcnow
from rudder.scale.runqueue import QUEUE, TASK, ProcrastinateRunQueue
from rudder.services import Services
from tests.helpers import default_org_and_agent, wait_run

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


async def _queued_run(services: Services, client: httpx.AsyncClient) -> tuple[str, str]:
    """A run recorded `queued`, 60 s old, that no job carries (its submission was lost)."""
    org, agent = await default_org_and_agent(client)
    r = await client.post(
        f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"], "title": "t"}
    )
    assert r.status_code == 201, r.text
    conv_id = r.json()["id"]
    async with services.sessions() as session, session.begin():
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        trigger = Message(conversation_id=conv.id, seq=1, role="user", body="hello")
        trigger.status = "completed"
        session.add(trigger)
        await session.flush()
        run = Run(
            org_id=conv.org_id,
            agent_id=conv.agent_id,
            conversation_id=conv.id,
            trigger_message_id=trigger.id,
            status="queued",
            created_at=utcnow() - timedelta(seconds=60),
        )
        session.add(run)
        await session.flush()
        return run.id, conv.id


def _queue(services: Services) -> ProcrastinateRunQueue:
    runs = services.runs
    assert isinstance(runs, ProcrastinateRunQueue), type(runs)
    return runs


async def _attempt(services: Services, run_id: str) -> int:
    async with services.sessions() as session:
        attempt = await session.scalar(select(Run.attempt).where(Run.id == run_id))
    assert attempt is not None
    return attempt


async def _jobs(services: Services, run_id: str) -> list[Any]:
    async with services.sessions() as session:
        return list(
            await session.execute(
                text(
                    "SELECT status FROM procrastinate_jobs "
                    "WHERE queue_name = :q AND args->>'run_id' = :r"
                ),
                {"q": QUEUE, "r": run_id},
            )
        )


async def test_a_queued_run_whose_job_was_never_deferred_is_submitted(
    services: Services, client: httpx.AsyncClient
) -> None:
    run_id, _ = await _queued_run(services, client)
    assert await _jobs(services, run_id) == []
    runs = _queue(services)
    assert await runs.sweep_unsubmitted(20.0) == 1
    run = await wait_run(client, run_id)
    assert run["status"] == "succeeded" and await _attempt(services, run_id) == 1, run
    # Done, it is not taken up again; nor is a young run still on its way to its job.
    assert await runs.sweep_unsubmitted(20.0) == 0
    young, _ = await _queued_run(services, client)
    async with services.sessions() as session, session.begin():
        await session.execute(update(Run).where(Run.id == young).values(created_at=utcnow()))
    assert await runs.sweep_unsubmitted(20.0) == 0


async def test_a_job_taken_by_a_worker_that_died_before_the_run_started_runs_it(
    services: Services, client: httpx.AsyncClient
) -> None:
    run_id, conv_id = await _queued_run(services, client)
    # A worker took the job (`doing`) and was killed before the run was marked `running`:
    # the job has no live worker, the run is still `queued`.
    async with services.sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status) "
                "VALUES (:q, :t, :lock, CAST(:args AS jsonb), 'doing')"
            ),
            {"q": QUEUE, "t": TASK, "lock": f"conv:{conv_id}", "args": f'{{"run_id": "{run_id}"}}'},
        )
    await _queue(services).sweep_stalled()
    run = await wait_run(client, run_id)
    assert run["status"] == "succeeded", run
    assert await _attempt(services, run_id) == 1 and run["error"] != texts.RUN_INTERRUPTED, run
    async with services.sessions() as session:
        reply = await session.scalar(
            select(Message).where(Message.conversation_id == conv_id, Message.role == "assistant")
        )
    assert reply is not None and reply.status == "completed" and reply.body
