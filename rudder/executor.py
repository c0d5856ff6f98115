"""The in-process run executor (embedded mode): one worker per busy conversation, in order.

A run's text streams to subscribers at once; the database gets it in short batches so a long
reply never holds a transaction open and a crash loses at most the last fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder import texts
from rudder.db.models import (
    Agent,
    Attachment,
    Conversation,
    GroupContext,
    Message,
    Run,
    RunEventRow,
    User,
    utcnow,
)
from rudder.domain import budgets, secret_store
from rudder.domain import conversations as convs
from rudder.domain import skills as skills_domain
from rudder.domain.runs import FINAL_STATUSES
from rudder.domain.secrets import SecretBox
from rudder.live import LiveHub, conversation_topic, org_topic
from rudder.media import attachments as media_attachments
from rudder.media import outbound as media_outbound
from rudder.media import rundir
from rudder.media.config import MediaConfig
from rudder.run_transcript import Transcript
from rudder.run_views import Observer, RunUpdate, message_view, run_view
from rudder.runtimes import policy as runtime_policy
from rudder.runtimes import skills as skill_delivery
from rudder.runtimes.base import (
    ChatMessage,
    ContextMessage,
    RunContext,
    RunEvent,
    RunEventKind,
    RunTimedOut,
    RuntimeError_,
)
from rudder.runtimes.policy import RuntimePolicy

log = logging.getLogger(__name__)

RuntimeLookup = Callable[[str], Any]

FLUSH_INTERVAL_S = 0.25
WORKER_IDLE_S = 30.0
STOP_TIMEOUT_S = 10.0
HISTORY_LIMIT = 200
_TRIGGER_FILES = "_trigger_attachments"  # ctx.extra slot between _start and _execute
MAX_ATTEMPTS = 2  # a run interrupted by a crash is run again once; a second crash ends it


async def interrupted(
    sessions: async_sessionmaker[AsyncSession], run_ids: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Runs left `running` by a process that died (all of them, or these): queue each again
    when its agent allows it and it was its first attempt, else mark it failed. Returns
    (queued again, failed)."""
    requeued: list[str] = []
    failed: list[str] = []
    async with sessions() as session, session.begin():
        query = select(Run, Agent.rerun_interrupted).join(Agent, Agent.id == Run.agent_id)
        query = query.where(Run.status == "running")
        if run_ids is not None:
            query = query.where(Run.id.in_(run_ids))
        for run, rerun in (await session.execute(query)).all():
            seq = await session.scalar(
                select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run.id)
            )
            if rerun and run.attempt < MAX_ATTEMPTS and run.cancel_requested_at is None:
                run.status, run.attempt, run.started_at = "queued", run.attempt + 1, None
                payload = {"status": "queued", "error": texts.RUN_INTERRUPTED_RETRY}
                requeued.append(run.id)
            else:
                run.status, run.error, run.finished_at = "failed", texts.RUN_INTERRUPTED, utcnow()
                await session.execute(
                    update(Message)
                    .where(Message.run_id == run.id, Message.status == "streaming")
                    .values(status="failed", error=texts.RUN_INTERRUPTED, updated_at=utcnow())
                )
                payload = {"status": "failed", "error": texts.RUN_INTERRUPTED}
                failed.append(run.id)
            # On the run's page: what happened to the attempt a crash cut short.
            session.add(
                RunEventRow(run_id=run.id, seq=(seq or 0) + 1, kind="status", payload=payload)
            )
    return requeued, failed


class InProcessRunQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live: LiveHub,
        box: SecretBox,
        runtime_lookup: RuntimeLookup | None = None,
    ) -> None:
        self._sessions = sessions
        self._live = live
        self._box = box
        if runtime_lookup is None:
            from rudder.runtimes import get_runtime

            runtime_lookup = get_runtime
        self._runtime_lookup = runtime_lookup
        # The operator's policy (create_app sets it from the settings); the strictest by default.
        self.policy = RuntimePolicy()
        # Blob store, run directories and limits (create_app sets it; None: no media).
        self.media: MediaConfig | None = None
        self._queues: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._executing: dict[str, asyncio.Task[None]] = {}
        self._observers: list[Observer] = []
        self._submitted: set[str] = set()
        self._closed = False

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    # -- lifecycle ----------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start-up: runs left `running` by a dead process are run again once (the user still
        needs the answer) unless their agent opted out or this was already the second attempt;
        those fail visibly. Queued ones resume."""
        requeued, failed = await interrupted(self._sessions)
        if requeued or failed:
            log.warning(
                "%d interrupted run(s) queued again, %d marked failed", len(requeued), len(failed)
            )
        async with self._sessions() as session:
            queued = list(
                await session.execute(
                    select(Run.id, Run.conversation_id)
                    .where(Run.status == "queued")
                    .order_by(Run.created_at)
                )
            )
        for run_id, conversation_id in queued:
            await self.submit(run_id, conversation_id)

    async def sweep(self, older_than_s: float) -> int:
        """While the process lives: runs nobody here is executing that should be. Queued runs
        that were never submitted (or whose submission was lost) are submitted; runs left
        `running` whose execution died (Rudder failed to record their end) are handled like
        interrupted runs. Returns how many it took up."""
        before = utcnow() - timedelta(seconds=older_than_s)
        async with self._sessions() as session:
            rows = list(
                await session.execute(
                    select(Run.id, Run.conversation_id, Run.status)
                    .where(Run.status.in_(("queued", "running")), Run.created_at < before)
                    .order_by(Run.created_at)
                )
            )
        orphans = [r.id for r in rows if r.status == "running" and not self.knows(r.id)]
        failed: list[str] = []
        if orphans:
            _, failed = await interrupted(self._sessions, orphans)
        taken = 0
        for run_id, conversation_id, status in rows:
            if self.knows(run_id) or run_id in failed:
                continue
            if status == "queued" or run_id in orphans:
                taken += 1
                await self.submit(run_id, conversation_id)
        for run_id in failed:
            taken += 1
            await self._announce_end(run_id)
        return taken

    async def _announce_end(self, run_id: str) -> None:
        async with self._sessions() as session:
            run = await session.get(Run, run_id)
            if run is None:
                return
            message = (
                await session.get(Message, run.reply_message_id) if run.reply_message_id else None
            )
        upd = RunUpdate(
            run_id=run.id,
            conversation_id=run.conversation_id,
            agent_id=run.agent_id,
            source=run.source,
            status=run.status,
            text=message.body if message is not None else "",
            error=run.error,
            trigger_message_id=run.trigger_message_id,
        )
        await self._notify("end", upd)

    def knows(self, run_id: str) -> bool:
        """Submitted to this queue and not finished yet (the sweeper leaves these alone)."""
        return run_id in self._submitted

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._workers.values()) + list(self._executing.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)

    # -- RunQueue ----------------------------------------------------------------------------

    async def submit(self, run_id: str, conversation_id: str) -> None:
        if self._closed:
            return
        if run_id in self._submitted:
            return  # already waiting or executing here (a sweep and a recovery may both ask)
        self._submitted.add(run_id)
        queue = self._queues.setdefault(conversation_id, asyncio.Queue())
        queue.put_nowait(run_id)
        worker = self._workers.get(conversation_id)
        if worker is None or worker.done():
            self._workers[conversation_id] = asyncio.create_task(
                self._worker(conversation_id, queue), name=f"runs:{conversation_id}"
            )

    async def cancel(self, run_id: str) -> bool:
        task = self._executing.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def is_executing(self, run_id: str) -> bool:
        task = self._executing.get(run_id)
        return task is not None and not task.done()

    def executing_ids(self) -> list[str]:
        return [run_id for run_id, task in self._executing.items() if not task.done()]

    async def execute(self, run_id: str) -> None:
        """Execute one run here and now, cancellable through `cancel` (used by queue workers)."""
        task = asyncio.create_task(self._execute(run_id), name=f"run:{run_id}")
        self._executing[run_id] = task
        try:
            # asyncio.wait, not await: a cancelled run must not cancel its caller.
            await asyncio.wait({task})
        finally:
            self._executing.pop(run_id, None)
            self._submitted.discard(run_id)
        if not task.cancelled() and task.exception() is not None:
            # The run's own errors end the run; this is Rudder failing to record it (say, the
            # database refused a write). The run stays unfinished: the sweeper finds it.
            log.error("run %s: executing it failed", run_id, exc_info=task.exception())

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is queued or executing (tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while (
            any(not w.done() for w in self._workers.values())
            and any(not q.empty() for q in self._queues.values())
        ) or any(not t.done() for t in self._executing.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("runs still executing")
            await asyncio.sleep(0.02)

    # -- execution ---------------------------------------------------------------------------

    async def _worker(self, conversation_id: str, queue: asyncio.Queue[str]) -> None:
        try:
            while True:
                try:
                    run_id = await asyncio.wait_for(queue.get(), WORKER_IDLE_S)
                except TimeoutError:
                    if queue.empty():
                        return
                    continue
                await self.execute(run_id)
        finally:
            if self._workers.get(conversation_id) is asyncio.current_task():
                self._workers.pop(conversation_id, None)
                if queue.empty():
                    self._queues.pop(conversation_id, None)

    async def _notify(self, phase: str, update_: RunUpdate) -> None:
        for observer in self._observers:
            try:
                await observer(phase, update_)
            except Exception:
                log.exception("run observer failed in phase %s", phase)

    async def _start(
        self, run_id: str
    ) -> tuple[RunContext, Any, RunUpdate, str, list[skills_domain.SkillFiles], Transcript] | None:
        async with self._sessions() as session, session.begin():
            run = await session.get(Run, run_id)
            if run is None or run.status != "queued":
                return None
            conv = await session.get(Conversation, run.conversation_id)
            agent = await session.get(Agent, run.agent_id)
            assert conv is not None and agent is not None
            # Budget hook: an agent paused for its budget does not run; the run waits, held.
            if await budgets.before_run(session, run, agent):
                self._live.publish(conversation_topic(conv.id), "run.updated", run_view(run))
                return None
            skill_files = await skills_domain.skills_for_run(session, agent)
            run.skills = [s.name for s in skill_files]
            trigger = (
                await session.get(Message, run.trigger_message_id)
                if run.trigger_message_id
                else None
            )
            # Only the newest HISTORY_LIMIT messages up to the trigger: later ones belong to
            # later runs, and a long conversation must not be loaded whole for every reply.
            history = await convs.recent_messages(
                session, conv.id, HISTORY_LIMIT, up_to_seq=trigger.seq if trigger else None
            )
            names = await _author_names(session, conv, history)
            group_context = await _group_context(session, conv, trigger)
            trigger_files = (
                (await media_attachments.for_messages(session, [trigger.id])).get(trigger.id, [])
                if trigger is not None
                else []
            )
            reply = (
                await session.get(Message, run.reply_message_id) if run.reply_message_id else None
            )
            if reply is not None:
                # A second attempt (a crash interrupted the first) answers in the same message,
                # and its Feishu card is the same card: the partial text is replaced.
                reply.body, reply.status, reply.error = "", "streaming", None
                reply.updated_at = utcnow()
            else:
                reply = await convs.append_message(
                    session,
                    conv,
                    role="assistant",
                    body="",
                    status="streaming",
                    author_agent_id=agent.id,
                    run_id=run.id,
                )
            # Run events go on numbering after the interrupted attempt's.
            last_seq = (
                await session.scalar(
                    select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run.id)
                )
                if run.attempt > 1
                else None
            )
            transcript = Transcript(run.id, _seq=last_seq or 0)
            run.status = "running"
            run.started_at = utcnow()
            run.reply_message_id = reply.id
            ctx = RunContext(
                run_id=run.id,
                agent_id=agent.id,
                agent_name=agent.name,
                conversation_id=conv.id,
                messages=[
                    ChatMessage(role=m.role, body=m.body, author=names.get(m.id))
                    for m in history
                    if m.status in ("completed", "stopped") and m.body
                ],
                runtime_config=dict(agent.runtime_config),
                instructions=agent.instructions,
                resolve_secret=self._secret_resolver(agent.org_id),
                session_id=conv.runtime_session_id,
                allow_private_urls=self.policy.allow_private_urls,
                group_context=group_context,
            )
            ctx.extra[_TRIGGER_FILES] = trigger_files
            paused = agent.status != "active"
            paused_text = (
                texts.AGENT_ARCHIVED if agent.status == "terminated" else texts.AGENT_PAUSED
            )
            # Defence in depth: a runtime the operator does not allow (stored before the rule, or
            # written to the database by hand) does not start, whoever saved it.
            refused = runtime_policy.start_problem(
                self.policy, agent.runtime_type, agent.runtime_config, agent.runtime_approved_by
            )
            runtime_type = agent.runtime_type
            upd = RunUpdate(
                run_id=run.id,
                conversation_id=conv.id,
                agent_id=agent.id,
                source=run.source,
                status="running",
                trigger_message_id=run.trigger_message_id,
            )
            topic = conversation_topic(conv.id)
            self._live.publish(topic, "run.updated", run_view(run))
            self._live.publish(topic, "message.created", message_view(reply))
        if paused:
            await self._finish(reply.id, upd, transcript, "failed", paused_text)
            return None
        if refused is not None:
            log.warning("run %s refused by the runtime policy: %s", run_id, refused)
            await self._finish(reply.id, upd, transcript, "failed", refused)
            return None
        return ctx, runtime_type, upd, reply.id, skill_files, transcript

    def _secret_resolver(self, org_id: str) -> Callable[[str], Awaitable[str]]:
        async def resolve(name: str) -> str:
            async with self._sessions() as session:
                try:
                    return await secret_store.get_secret_value(session, self._box, org_id, name)
                except Exception as exc:
                    raise RuntimeError_(f"secret {name!r} is not available: {exc}") from None

        return resolve

    async def _execute(self, run_id: str) -> None:
        started = await self._start(run_id)
        if started is None:
            return
        ctx, runtime_type, upd, reply_id, skill_files, transcript = started
        topic = conversation_topic(ctx.conversation_id)
        await self._notify("start", upd)

        last_flush = time.monotonic()
        status, error = "succeeded", None

        async def flush() -> None:
            nonlocal last_flush
            rows = transcript.take_rows()
            last_flush = time.monotonic()
            async with self._sessions() as session, session.begin():
                session.add_all(rows)
                await session.execute(
                    update(Message).where(Message.id == reply_id).values(body=transcript.text)
                )

        skills_placed = contextlib.ExitStack()
        run_dir: Path | None = None
        trigger_files = ctx.extra.pop(_TRIGGER_FILES, [])
        try:
            if self.media is not None:
                # The run's own directory, with the files of the message it answers.
                run_dir = rundir.create(self.media, run_id)
                ctx.attachments = await rundir.materialize(self.media, run_dir, trigger_files)
                rundir.apply(runtime_type, ctx, run_dir)
                if runtime_type == "http":
                    ctx.attachments = rundir.offer_links(
                        self.media, self._box, run_id, ctx.attachments
                    )
            # The agent's skills, where its runtime reads them, for as long as the run lasts.
            skills_placed.enter_context(skill_delivery.deliver(runtime_type, ctx, skill_files))
            runtime = self._runtime_lookup(runtime_type)
            # aclosing: a stop that lands between events still releases the process at once.
            async with contextlib.aclosing(
                cast(AsyncGenerator[RunEvent, None], runtime.stream(ctx))
            ) as stream:
                async for ev in stream:
                    if ev.kind is RunEventKind.TEXT:
                        if not ev.text:
                            continue
                        # `offset` lets a client that got a snapshot mid-stream skip what it has.
                        delta = {
                            "message_id": reply_id,
                            "run_id": run_id,
                            "offset": transcript.text_length,
                            "delta": ev.text,
                        }
                        transcript.add(ev)
                        self._live.publish(topic, "message.delta", delta)
                        upd.text = transcript.text
                        await self._notify("text", upd)
                    elif ev.kind is RunEventKind.ATTACHMENT:
                        transcript.add(await self._attachment(ctx, run_dir, reply_id, ev))
                    else:
                        transcript.add(ev)
                    if time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                        await flush()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            status, error = "cancelled", None
        except RunTimedOut as exc:
            # A timeout stops the run like /stop does (issue 12), and says why.
            status, error = "cancelled", str(exc)
        except RuntimeError_ as exc:
            status, error = "failed", str(exc) or "the runtime failed"
        except KeyError as exc:
            status, error = "failed", f"unknown runtime: {exc}"
        except Exception as exc:
            log.exception("run %s crashed", run_id)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        skills_placed.close()
        if run_dir is not None:
            rundir.remove(run_dir)
        await self._finish(reply_id, upd, transcript, status, error)

    async def _attachment(
        self, ctx: RunContext, run_dir: Path | None, reply_id: str, ev: RunEvent
    ) -> RunEvent:
        """Store a file the agent attached to its reply; the transcript's record of it."""
        if self.media is None or run_dir is None:
            return RunEvent(RunEventKind.ATTACHMENT, ev.text, {"status": "refused"})
        row = await media_outbound.take(
            self._sessions,
            self.media,
            run_id=ctx.run_id,
            conversation_id=ctx.conversation_id,
            reply_message_id=reply_id,
            run_dir=run_dir,
            data=ev.data,
        )
        seen = {"name": row.name, "status": row.status, "size": row.size, "reason": row.reason}
        return RunEvent(RunEventKind.ATTACHMENT, row.name, seen)

    async def _finish(
        self, reply_id: str, upd: RunUpdate, transcript: Transcript, status: str, error: str | None
    ) -> None:
        message_status = {"succeeded": "completed", "cancelled": "stopped"}.get(status, "failed")
        rows = transcript.take_rows(final_status=status, error=error)

        # Shielded: a shutdown that cancels us mid-write must not leave the run "running".
        async def write() -> tuple[Run, Message, budgets.Enforcement, list[Attachment]]:
            async with self._sessions() as session, session.begin():
                run = await session.get(Run, transcript.run_id)
                message = await session.get(Message, reply_id)
                assert run is not None and message is not None
                session.add_all(rows)
                if run.status not in FINAL_STATUSES:
                    run.status = status
                run.error = error
                run.usage = transcript.usage
                run.finished_at = utcnow()
                # Budget hook: price the run, alert at the warning, pause at the hard stop.
                enforcement = await budgets.after_run(session, run)
                message.body = transcript.text
                message.status = message_status
                message.error = error
                message.updated_at = utcnow()
                if transcript.session_id:
                    conv = await session.get(Conversation, run.conversation_id)
                    if conv is not None:
                        conv.runtime_session_id = transcript.session_id
                files = await media_attachments.for_messages(session, [message.id])
                return run, message, enforcement, files.get(message.id, [])

        run, message, enforcement, files = await asyncio.shield(write())
        await self._enforce(run.org_id, enforcement)
        topic = conversation_topic(run.conversation_id)
        view = message_view(message)
        if files:  # what the agent attached to its reply
            view["attachments"] = [media_attachments.view(a) for a in files]
        self._live.publish(topic, "message.updated", view)
        self._live.publish(topic, "run.updated", run_view(run))
        self._live.publish(
            org_topic(run.org_id), "conversation.updated", {"conversation_id": run.conversation_id}
        )
        if run.status == "failed":
            self._live.publish(org_topic(run.org_id), "run.failed", run_view(run))
        upd.status, upd.text, upd.error = run.status, transcript.text, error
        await self._notify("end", upd)

    async def _enforce(self, org_id: str, enforcement: budgets.Enforcement) -> None:
        """Carry out what the budget hook decided: stop the paused agents' runs, tell the UI."""
        for run_id in enforcement.cancel_run_ids:
            await self.cancel(run_id)
        if enforcement.incidents or enforcement.paused_agent_ids:
            self._live.publish(
                org_topic(org_id),
                "budget.updated",
                {
                    "incidents": enforcement.incidents,
                    "paused_agent_ids": enforcement.paused_agent_ids,
                },
            )


async def _group_context(
    session: AsyncSession, conv: Conversation, trigger: Message | None
) -> list[ContextMessage]:
    """The group's recent messages routing kept for the Feishu message this run answers."""
    if trigger is None or not conv.integration_id or not trigger.external_message_id:
        return []
    items = await session.scalar(
        select(GroupContext.items).where(
            GroupContext.integration_id == conv.integration_id,
            GroupContext.message_id == trigger.external_message_id,
        )
    )
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            found.append(
                ContextMessage(
                    sender=str(item.get("sender") or "?"),
                    sender_type=str(item.get("sender_type") or "user"),
                    sent_at=str(item.get("sent_at") or ""),
                    text=item["text"],
                    message_id=str(item.get("message_id") or ""),
                )
            )
    return found


async def _author_names(
    session: AsyncSession, conv: Conversation, history: list[Message]
) -> dict[str, str]:
    """Who wrote each message: a Feishu sender by their Feishu name, else the member's name."""
    ids = {m.author_user_id for m in history if m.author_user_id}
    users: dict[str, str] = {}
    if ids:
        rows = await session.execute(select(User.id, User.name).where(User.id.in_(ids)))
        users = {uid: name for uid, name in rows.all()}
    feishu: dict[str, str] = {}
    if conv.integration_id:
        from rudder.feishu.names import display_names

        senders = {m.external_sender_id for m in history if m.external_sender_id}
        feishu = await display_names(session, conv.integration_id, senders)
    # A hand-off's message (rudder/feishu/handoff.py) is the handing agent's, not its person's.
    agent_ids = {m.author_agent_id for m in history if m.role == "user" and m.author_agent_id}
    agents: dict[str, str] = {}
    if agent_ids:
        rows = await session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(agent_ids)))
        agents = {aid: name for aid, name in rows.all()}
    named = {}
    for m in history:
        if m.role == "user" and m.author_agent_id in agents:
            named[m.id] = agents[m.author_agent_id]
            continue
        name = feishu.get(m.external_sender_id or "") or users.get(m.author_user_id or "")
        if name:
            named[m.id] = name
    return named
