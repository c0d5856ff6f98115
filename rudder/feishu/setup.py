"""Setup sessions: the short-lived Connect flow, polled in the background, resumed on restart.

Lifecycle (transitions only in `_finish`, and `_late_approval` for abandoned ones):
  pending ─┬─> connected   the app was approved and its credential verified and stored
           ├─> denied      the person declined on the confirm page
           ├─> expired     the registration code or our 10-minute limit ran out
           ├─> cancelled   a person cancelled it (web: Cancel, API: POST …/cancel)
           └─> failed      replaced by a newer setup, or an unrecoverable error

A cancelled or replaced setup is *abandoned*, not forgotten: its code can still be approved in
Feishu, which creates the app there whatever Rudder does (the registration flow has no way to
withdraw a code). So it is still polled, quietly, until the code expires. An approval that comes
late connects the app when the agent has no bot yet; otherwise the Integrations tab names the
app to delete. Either way no bot is left that people can message and nobody answers.

As in the official SDKs, registration begins and polls on the Feishu accounts host whichever
product was chosen (`region`, which picks the verification link's host); an answer naming a Lark
tenant moves polling to the Lark host once (`poll_host`, kept across a restart). The app ends on
the product whose host issued its secret (`connected_region`), which may differ from `region`:
a Lark tenant approving a Feishu CN setup gets a Lark Global bot, as the SDKs would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Agent, SetupSession, utcnow
from rudder.domain import activity
from rudder.domain.errors import Conflict, DomainError, NotFound
from rudder.domain.secrets import secret_aad
from rudder.feishu import connect as connecting
from rudder.feishu import registration as reg
from rudder.feishu.errors import FeishuError, FeishuUnreachable
from rudder.feishu.regions import Region
from rudder.services import Services

log = logging.getLogger(__name__)

MAX_SETUP_S = 10 * 60
MAX_POLL_FAILURES = 5  # consecutive unreachable/garbled answers before the setup fails  # "Setup sessions are short-lived": at most ten minutes


class SetupStatus(StrEnum):
    """A setup session's state (stored as its value); the transitions are in the docstring."""

    PENDING = "pending"  # its code waits for a person's approval; polled
    CONNECTED = "connected"  # approved; the agent's bot is this app
    DENIED = "denied"  # declined on the confirm page
    EXPIRED = "expired"  # the code or the 10-minute limit ran out
    FAILED = "failed"  # replaced by a newer setup, or an unrecoverable error
    CANCELLED = "cancelled"  # a person cancelled it


S = SetupStatus
FINAL = (S.CONNECTED, S.DENIED, S.EXPIRED, S.FAILED, S.CANCELLED)
# Final statuses whose code may still be approved in Feishu (see the module docstring).
ABANDONED = (S.FAILED, S.CANCELLED)
ORPHAN_ACTION = "feishu.setup_orphan_app"
DESCRIPTION = "Rudder agent {name}: talk to it in Feishu or Lark."


def _aad(session_id: str) -> str:
    return secret_aad("setup_sessions", session_id, "device_code")


def connected_region(row: SetupSession) -> Region | None:
    """The product the app ended on: the host that issued its secret (None until connected)."""
    if row.status != S.CONNECTED:
        return None
    return Region(row.poll_host or reg.BEGIN_REGION.value)


def outcome_text(row: SetupSession) -> str | None:
    """What the setup ended on, in words for people (None while pending or when it failed)."""
    ended = connected_region(row)
    if ended is None:
        return None
    chosen = Region(row.region)
    if ended is chosen:
        return texts.SETUP_CONNECTED.format(product=ended.label)
    return texts.SETUP_ENDED_ON_OTHER.format(actual=ended.label, chosen=chosen.label)


def setup_view(row: SetupSession) -> dict[str, Any]:
    ended = connected_region(row)
    return {
        "setup_id": row.id,
        "agent_id": row.agent_id,
        "region": row.region,
        "connected_region": ended.value if ended else None,
        "outcome": outcome_text(row),
        "status": row.status,
        "verification_url": row.verification_url,
        "user_code": row.user_code,
        "expires_at": row.expires_at.isoformat(),
        "error": row.error,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


def start_failed_text(region: Region, exc: FeishuError) -> str:
    """Why a setup could not start, in words for people (no resolver errors for a lost network)."""
    if isinstance(exc, FeishuUnreachable):
        return texts.SETUP_START_UNREACHABLE.format(product=region.label)
    return texts.WEB_SETUP_START_FAILED.format(product=region.label, detail=exc)


def setup_topic(setup_id: str) -> str:
    return f"setup:{setup_id}"


class SetupPoller:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, agent: Agent, region: Region, *, actor: str) -> SetupSession:
        services = self.services
        await connecting.require_bot_manager(services, agent, actor)
        begun = await reg.begin(services.http, services.settings.feishu_base_url)
        now = utcnow()
        async with services.sessions() as session, session.begin():
            # One live setup per agent: a newer Connect replaces the older one.
            older = await session.scalars(
                select(SetupSession).where(
                    SetupSession.agent_id == agent.id, SetupSession.status == S.PENDING
                )
            )
            replaced = [row.id for row in older]
            row = SetupSession(
                org_id=agent.org_id,
                agent_id=agent.id,
                region=region.value,
                user_code=begun.user_code,
                verification_url=reg.verification_url(
                    region,
                    begun.user_code,
                    name=agent.name,
                    desc=DESCRIPTION.format(name=agent.name),
                    base_url_override=services.settings.feishu_base_url,
                    group_context=agent.group_context,
                ),
                poll_interval_s=max(1, round(begun.interval_s)),
                poll_host=reg.BEGIN_REGION.value,
                expires_at=now + timedelta(seconds=min(begun.expires_in_s, MAX_SETUP_S)),
            )
            session.add(row)
            await session.flush()
            row.device_code_ciphertext = services.box.encrypt(begun.device_code, _aad(row.id))
            activity.record(
                session,
                org_id=agent.org_id,
                actor=actor,
                action="feishu.setup_started",
                entity_type="setup_session",
                entity_id=row.id,
                details={"region": region.value},
            )
        for old in replaced:
            # Its poll goes on quietly until the code expires: see "abandoned" above.
            await self._finish(old, S.FAILED, texts.SETUP_REPLACED, keep_code=True)
        self._spawn(row.id, begun.interval_s)
        return row

    async def cancel(self, setup_id: str, *, actor: str) -> SetupSession:
        async with self.services.sessions() as session:
            row = await session.get(SetupSession, setup_id)
        if row is None:
            raise NotFound("setup session not found")
        if row.status != S.PENDING:
            raise Conflict(texts.SETUP_NOT_PENDING.format(status=row.status))
        ended = await self._finish(
            setup_id,
            S.CANCELLED,
            texts.SETUP_CANCELLED.format(actor=actor),
            actor=actor,
            keep_code=True,
        )
        if ended is None:  # it ended on its own a moment ago
            return await get_setup(self.services, setup_id)
        return ended

    def _spawn(self, setup_id: str, interval_s: float | None = None) -> None:
        task = self._tasks.get(setup_id)
        if task is None or task.done():
            self._tasks[setup_id] = asyncio.create_task(
                self._poll_loop(setup_id, interval_s), name=f"setup:{setup_id}"
            )

    async def resume(self) -> None:
        """After a restart: keep polling live and abandoned sessions, expire the lapsed ones."""
        async with self.services.sessions() as session:
            rows = list(
                await session.scalars(
                    select(SetupSession).where(
                        (SetupSession.status == S.PENDING)
                        | (
                            SetupSession.status.in_(ABANDONED)
                            & SetupSession.device_code_ciphertext.is_not(None)
                        )
                    )
                )
            )
        for row in rows:
            if row.expires_at > utcnow():
                self._spawn(row.id)
            elif row.status == S.PENDING:
                await self._finish(row.id, S.EXPIRED, texts.SETUP_EXPIRED)
            else:
                await self._forget_code(row.id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def wait(self, setup_id: str, timeout: float) -> None:
        task = self._tasks.get(setup_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    async def _finish(
        self,
        setup_id: str,
        status: str,
        error: str | None = None,
        *,
        actor: str = "system",
        keep_code: bool = False,
    ) -> SetupSession | None:
        async with self.services.sessions() as session, session.begin():
            row = await session.get(SetupSession, setup_id)
            if row is None or row.status in FINAL:
                return None
            row.status, row.error, row.finished_at = status, error, utcnow()
            if not keep_code:  # no longer needed; don't keep secrets around
                row.device_code_ciphertext = None
            activity.record(
                session,
                org_id=row.org_id,
                actor=actor,
                action=f"feishu.setup_{status}",
                entity_type="setup_session",
                entity_id=row.id,
                details={"error": error}
                if error
                else ({"region": row.poll_host} if status == S.CONNECTED else {}),
            )
        self.services.live.publish(setup_topic(setup_id), "setup.updated", setup_view(row))
        return row

    async def _poll_loop(self, setup_id: str, interval_s: float | None) -> None:
        try:
            await self._poll(setup_id, interval_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("setup %s failed", setup_id)
            await self._finish(setup_id, S.FAILED, f"Setup failed: {exc}")
        await self._forget_code(setup_id)

    async def _forget_code(self, setup_id: str) -> None:
        """Its poll is over: an abandoned setup's device code is no longer worth keeping."""
        async with self.services.sessions() as session, session.begin():
            row = await session.get(SetupSession, setup_id)
            if row is not None and row.status in FINAL:
                row.device_code_ciphertext = None

    async def _poll(self, setup_id: str, interval_s: float | None = None) -> None:
        services = self.services
        async with services.sessions() as session:
            row = await session.get(SetupSession, setup_id)
            if row is None or row.device_code_ciphertext is None:
                return
            if row.status != S.PENDING and row.status not in ABANDONED:
                return
            device_code = services.box.decrypt(row.device_code_ciphertext, _aad(row.id))
            chosen = Region(row.region)
            poll_region = Region(row.poll_host or reg.BEGIN_REGION.value)
            # The stored interval is whole seconds (for a resume); a fresh start knows it exactly.
            interval = interval_s if interval_s is not None else float(row.poll_interval_s)
            expires_at, agent_id = row.expires_at, row.agent_id
        transport_failures = 0
        switched = poll_region is not reg.BEGIN_REGION
        wait = True
        while True:
            remaining = (expires_at - utcnow()).total_seconds()
            if remaining <= 0:
                await self._finish(setup_id, S.EXPIRED, texts.SETUP_EXPIRED)
                return
            # Sleep before each poll, as the SDKs do, but never past the deadline; the poll right
            # after the switch to the Lark host goes at once (both SDKs).
            if wait:
                await asyncio.sleep(min(interval, remaining))
            wait = True
            # Until an answer names the tenant, the person is on the product they chose.
            talking_to = poll_region if switched else chosen
            try:
                result = await reg.poll(
                    services.http,
                    poll_region,
                    device_code,
                    services.settings.feishu_base_url,
                    switched=switched,
                )
            except FeishuError as exc:
                transport_failures += 1
                log.warning("setup %s: poll failed (%s)", setup_id, exc)
                if transport_failures >= MAX_POLL_FAILURES:
                    await self._finish(
                        setup_id,
                        S.FAILED,
                        texts.SETUP_UNREACHABLE.format(product=talking_to.label, detail=exc.msg),
                    )
                    return
                interval = min(reg.MAX_INTERVAL_S, max(interval, 0.2) * 1.5 + random.random() * 0.2)
                continue
            transport_failures = 0
            state = result.state
            if state is reg.PollState.PENDING:
                continue
            if state is reg.PollState.SLOW_DOWN:
                interval = min(reg.MAX_INTERVAL_S, interval + reg.SLOW_DOWN_STEP_S)
                continue
            if state is reg.PollState.SWITCH_TO_LARK:
                switched, wait, poll_region = True, False, Region.LARK
                await self._switch_poll_host(setup_id, poll_region)
                continue
            if state is reg.PollState.DENIED:
                await self._finish(
                    setup_id, S.DENIED, texts.SETUP_DENIED.format(product=talking_to.label)
                )
                return
            if state is reg.PollState.EXPIRED:
                await self._finish(setup_id, S.EXPIRED, texts.SETUP_EXPIRED)
                return
            if state is reg.PollState.ERROR:
                await self._finish(
                    setup_id,
                    S.FAILED,
                    texts.SETUP_SERVER_ERROR.format(product=talking_to.label, detail=result.detail),
                )
                return
            assert result.client_id and result.client_secret
            # The host that issued the secret is the product the app lives on.
            await self._complete(setup_id, agent_id, poll_region, result)
            return

    async def _switch_poll_host(self, setup_id: str, region: Region) -> None:
        async with self.services.sessions() as session, session.begin():
            row = await session.get(SetupSession, setup_id)
            if row is None or row.status in FINAL:
                return
            row.poll_host = region.value
            activity.record(
                session,
                org_id=row.org_id,
                actor="system",
                action="feishu.setup_switched",
                entity_type="setup_session",
                entity_id=row.id,
                details={"region": row.region, "poll_host": region.value},
            )

    async def _complete(
        self, setup_id: str, agent_id: str, region: Region, result: reg.PollResult
    ) -> None:
        assert result.client_id and result.client_secret
        async with self.services.sessions() as session:
            agent = await session.get(Agent, agent_id)
            row = await session.get(SetupSession, setup_id)
        if agent is None or row is None:
            await self._finish(setup_id, S.FAILED, "The agent was deleted during setup.")
            return
        creds = connecting.Credentials(
            region=region, app_id=result.client_id, app_secret=result.client_secret
        )
        if row.status != S.PENDING:
            await self._late_approval(row, agent, creds)
            return
        try:
            await connecting.connect(self.services, agent, creds, actor="system", via="setup")
        except DomainError as exc:
            await self._finish(setup_id, S.FAILED, exc.detail)
            return
        await self._finish(setup_id, S.CONNECTED)

    async def _late_approval(
        self, row: SetupSession, agent: Agent, creds: connecting.Credentials
    ) -> None:
        """An abandoned setup's code was approved: connect it if the agent is free, else say so."""
        services = self.services
        async with services.sessions() as session:
            current = await connecting.integration_for_agent(session, agent.id)
        detail: str | None = None
        if current is None or current.status == "disconnected":
            try:
                await connecting.connect(services, agent, creds, actor="system", via="setup")
            except DomainError as exc:
                detail = exc.detail
            else:
                await self._settle_late(row, agent, creds, connected=True)
                return
        await self._settle_late(row, agent, creds, connected=False, detail=detail)

    async def _settle_late(
        self,
        row: SetupSession,
        agent: Agent,
        creds: connecting.Credentials,
        *,
        connected: bool,
        detail: str | None = None,
    ) -> None:
        product = creds.region.label
        async with self.services.sessions() as session, session.begin():
            stored = await session.get(SetupSession, row.id)
            if stored is None:
                return
            details = {"setup_id": row.id, "app_id": creds.app_id, "region": creds.region.value}
            if connected:
                stored.status, stored.poll_host = S.CONNECTED, creds.region.value
                stored.error = texts.SETUP_LATE_APPROVAL_CONNECTED.format(product=product)
                action = "feishu.setup_late_approval"
            else:
                stored.error = texts.SETUP_ORPHAN_APP.format(product=product, app_id=creds.app_id)
                action = ORPHAN_ACTION
                if detail:
                    details["detail"] = detail
            stored.device_code_ciphertext = None
            activity.record(
                session,
                org_id=row.org_id,
                actor="system",
                action=action,
                entity_type="agent",
                entity_id=agent.id,
                details=details,
            )
            newer = list(
                await session.scalars(
                    select(SetupSession.id).where(
                        SetupSession.agent_id == agent.id, SetupSession.status == S.PENDING
                    )
                )
            )
        if connected:  # the person got their bot: the newer codes are abandoned in turn
            for setup_id in newer:
                await self._finish(
                    setup_id, S.FAILED, texts.SETUP_SUPERSEDED_BY_LATE_APPROVAL, keep_code=True
                )
        self.services.live.publish(setup_topic(row.id), "setup.updated", setup_view(stored))


async def get_setup(services: Services, setup_id: str) -> SetupSession:
    async with services.sessions() as session:
        row = await session.get(SetupSession, setup_id)
    if row is None:
        raise NotFound("setup session not found")
    return row


def poller(services: Services) -> SetupPoller:
    found = services.components.setup_poller
    if found is None:
        found = services.components.setup_poller = SetupPoller(services)
    return found


async def shutdown(services: Services) -> None:
    found = services.components.setup_poller
    if found is not None:
        with contextlib.suppress(Exception):
            await found.close()
