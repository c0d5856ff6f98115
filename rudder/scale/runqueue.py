"""Runs on a PostgreSQL job queue (procrastinate): any instance or `rudder worker` executes them.

A job carries only a run id; the `runs` table stays the source of truth. Jobs of one
conversation share the lock `conv:<id>`, so its runs execute one at a time and in order, in
whichever process. Stop crosses processes as the `cancel_requested_at` flag plus a NOTIFY; a
periodic sweep catches a notification that was missed. A process killed mid-run leaves its job
`doing` under a worker whose heartbeat stops: the sweep runs it again once (or fails it
visibly, as in embedded mode); a run recorded but never deferred is submitted by the sweep too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import procrastinate
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder import texts
from rudder.db.models import Agent, Message, Run, RunEventRow, utcnow
from rudder.domain.secrets import SecretBox
from rudder.executor import MAX_ATTEMPTS, InProcessRunQueue, RuntimeLookup
from rudder.live import LiveHub, conversation_topic
from rudder.run_views import RunUpdate, message_view, run_view
from rudder.scale.bus import NotifyBus, plain_url
from rudder.scale.config import ScaleConfig

log = logging.getLogger(__name__)

QUEUE = "rudder_runs"
TASK = "rudder.run_agent"
CANCEL_CHANNEL = "rudder_run_cancel"
FETCH_POLL_S = 1.0
WORKER_STOP_S = 10.0
# A queued run older than this without a job is taken to have lost its submission.
UNSUBMITTED_AFTER_S = 20.0


class ProcrastinateRunQueue(InProcessRunQueue):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live: LiveHub,
        box: SecretBox,
        *,
        database_url: str,
        bus: NotifyBus,
        config: ScaleConfig,
        runtime_lookup: RuntimeLookup | None = None,
    ) -> None:
        super().__init__(sessions, live, box, runtime_lookup)
        self.config = config
        self.bus = bus
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=plain_url(database_url), min_size=1, max_size=4
            )
        )
        self._task = self.app.task(name=TASK, queue=QUEUE)(self._job)
        self._job_worker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._opened = False
        bus.on(CANCEL_CHANNEL, self._on_cancel)
        bus.on_reconnect(self.sweep_cancels)

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.app.open_async()
        self._opened = True
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="run-queue-sweep")

    async def start_worker(self, concurrency: int, name: str) -> None:
        """Execute runs in this process too (instances by default; `rudder worker` always)."""
        if concurrency <= 0:
            return
        self._job_worker = asyncio.create_task(
            self.app.run_worker_async(
                queues=[QUEUE],
                name=name,
                concurrency=concurrency,
                install_signal_handlers=False,
                fetch_job_polling_interval=FETCH_POLL_S,
                update_heartbeat_interval=self.config.heartbeat_s,
                stalled_worker_timeout=self.config.dead_after_s,
                shutdown_graceful_timeout=WORKER_STOP_S,
                delete_jobs="successful",
            ),
            name="run-worker",
        )

    async def recover(self) -> None:
        """Runs of processes that died: run again once or failed visibly (`sweep_stalled`),
        and queued runs whose job was never deferred (`sweep_unsubmitted`)."""
        await self.sweep_stalled()
        await self.sweep_unsubmitted(UNSUBMITTED_AFTER_S)

    async def close(self) -> None:
        # Runs executing here end now (as in embedded mode); then the worker has nothing to wait for.
        await super().close()
        for task in (self._sweeper, self._job_worker):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, WORKER_STOP_S)
        if self._opened:
            self._opened = False
            await self.app.close_async()

    # -- RunQueue --------------------------------------------------------------------------------

    async def submit(self, run_id: str, conversation_id: str) -> None:
        if self._closed:
            return
        await self._task.configure(lock=f"conv:{conversation_id}").defer_async(run_id=run_id)

    async def cancel(self, run_id: str) -> bool:
        local = await super().cancel(run_id)
        if not local:
            self.bus.send(CANCEL_CHANNEL, run_id)
        return local

    async def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.executing_ids() or await self.depth() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("runs still queued or executing")
            await asyncio.sleep(0.05)

    async def depth(self) -> int:
        """Jobs waiting or executing anywhere."""
        async with self._sessions() as session:
            found = await session.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE queue_name = :q AND status IN ('todo', 'doing')"
                ),
                {"q": QUEUE},
            )
        return int(found or 0)

    async def _job(self, run_id: str) -> None:
        await self.execute(run_id)

    async def _on_cancel(self, run_id: str) -> None:
        await InProcessRunQueue.cancel(self, run_id)

    # -- sweeps ----------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        last_unsubmitted = time.monotonic()
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            try:
                await self.sweep_cancels()
                await self.sweep_stalled()
                # Rare (a death between two statements) and a scan of the queued runs: less often.
                if time.monotonic() - last_unsubmitted >= UNSUBMITTED_AFTER_S / 2:
                    last_unsubmitted = time.monotonic()
                    await self.sweep_unsubmitted(UNSUBMITTED_AFTER_S)
            except Exception as exc:
                log.warning("run queue sweep failed: %s", exc)

    async def sweep_cancels(self) -> None:
        """Stop local runs whose stop was requested while a notification could be missed."""
        ids = self.executing_ids()
        if not ids:
            return
        async with self._sessions() as session:
            wanted = list(
                await session.scalars(
                    select(Run.id).where(Run.id.in_(ids), Run.cancel_requested_at.is_not(None))
                )
            )
        for run_id in wanted:
            await InProcessRunQueue.cancel(self, run_id)

    async def sweep_stalled(self) -> None:
        stalled = await self.app.job_manager.get_stalled_jobs(
            queue=QUEUE, seconds_since_heartbeat=self.config.dead_after_s
        )
        for job in stalled:
            run_id = str(job.task_kwargs.get("run_id", ""))
            assert job.id is not None
            # A job taken by a worker that died before it marked its run `running` never
            # started: the run is still `queued` and is simply submitted again.
            again = await self._never_started(run_id) if run_id else None
            how = "its worker died before it started"
            if again is None and run_id:
                again = await self._requeue_interrupted(run_id)
                how = "its worker died mid-run"
            if again is None and run_id and await self._fail_interrupted(run_id):
                log.warning("run %s: its worker died mid-run; marked failed", run_id)
            with contextlib.suppress(Exception):  # another process finished it first
                await self.app.job_manager.finish_job_by_id_async(
                    job.id, status=procrastinate.jobs.Status.FAILED, delete_job=False
                )
            if again is not None:
                log.warning("run %s: %s; queued again", run_id, how)
                await self.submit(run_id, again)

    async def _never_started(self, run_id: str) -> str | None:
        """The conversation of `run_id` when the run is still `queued`."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Run.conversation_id).where(Run.id == run_id, Run.status == "queued")
                )
            ).first()
        return row[0] if row is not None else None

    async def sweep_unsubmitted(self, older_than_s: float) -> int:
        """Queued runs without a job waiting or executing anywhere: their submission was lost
        (the process died between recording the run and deferring its job). Each is submitted
        again; a duplicate job is harmless, since a run starts only from `queued`."""
        before = utcnow() - timedelta(seconds=older_than_s)
        async with self._sessions() as session:
            rows = list(
                await session.execute(
                    text(
                        "SELECT r.id, r.conversation_id FROM runs r "
                        "WHERE r.status = 'queued' AND r.created_at < :before "
                        "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j "
                        "WHERE j.queue_name = :q AND j.status IN ('todo', 'doing') "
                        "AND j.args->>'run_id' = r.id) ORDER BY r.created_at"
                    ),
                    {"before": before, "q": QUEUE},
                )
            )
        for run_id, conversation_id in rows:
            log.warning("run %s: queued but never submitted; submitted now", run_id)
            await self.submit(run_id, conversation_id)
        return len(rows)

    async def _requeue_interrupted(self, run_id: str) -> str | None:
        """As in embedded mode (executor.interrupted): a first interruption runs it again when
        its agent allows. Returns its conversation id when queued again."""
        async with self._sessions() as session, session.begin():
            rerun = select(Agent.rerun_interrupted).where(Agent.id == Run.agent_id)
            # Conditional update: concurrent sweepers on other processes requeue it once.
            result = await session.execute(
                update(Run)
                .where(
                    Run.id == run_id,
                    Run.status == "running",
                    Run.attempt < MAX_ATTEMPTS,
                    Run.cancel_requested_at.is_(None),
                    rerun.scalar_subquery().is_(True),
                )
                .values(status="queued", attempt=Run.attempt + 1, started_at=None)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                return None
            seq = await session.scalar(
                select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run_id)
            )
            session.add(
                RunEventRow(
                    run_id=run_id,
                    seq=(seq or 0) + 1,
                    kind="status",
                    payload={"status": "queued", "error": texts.RUN_INTERRUPTED_RETRY},
                )
            )
            return await session.scalar(select(Run.conversation_id).where(Run.id == run_id))

    async def _fail_interrupted(self, run_id: str) -> bool:
        async with self._sessions() as session, session.begin():
            # Conditional update: concurrent sweepers on other processes fail it once.
            result = await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status.in_(("running", "queued")))
                .values(status="failed", error=texts.RUN_INTERRUPTED, finished_at=utcnow())
            )
            if not getattr(result, "rowcount", 0):
                return False
            await session.execute(
                update(Message)
                .where(Message.run_id == run_id, Message.status == "streaming")
                .values(status="failed", error=texts.RUN_INTERRUPTED, updated_at=utcnow())
            )
            run = await session.get(Run, run_id)
            assert run is not None
            reply = (
                await session.get(Message, run.reply_message_id) if run.reply_message_id else None
            )
        topic = conversation_topic(run.conversation_id)
        if reply is not None:
            self._live.publish(topic, "message.updated", message_view(reply))
        self._live.publish(topic, "run.updated", run_view(run))
        await self._report_to_chat(run, reply)
        return True

    async def _report_to_chat(self, run: Run, reply: Message | None) -> None:
        """Observers (the Feishu reply) learn the run ended, as in the process that died."""
        update_ = RunUpdate(
            run_id=run.id,
            conversation_id=run.conversation_id,
            agent_id=run.agent_id,
            source=run.source,
            status=run.status,
            text=reply.body if reply is not None else "",
            error=run.error,
            trigger_message_id=run.trigger_message_id,
        )
        await self._notify("end", update_)
