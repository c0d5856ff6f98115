"""Setup sessions: the short-lived Connect flow, polled in the background, resumed on restart.

Lifecycle (transitions only in `_finish`):
  pending ─┬─> connected   the app was approved and its credential verified and stored
           ├─> denied      the person declined on the confirm page
           ├─> expired     the registration code or our 10-minute limit ran out
           └─> failed      replaced by a newer setup, or an unrecoverable error

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
from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Agent, SetupSession, utcnow
from rudder.domain import activity
from rudder.domain.errors import DomainError, NotFound
from rudder.domain.secrets import secret_aad
from rudder.feishu import connect as connecting
from rudder.feishu import registration as reg
from rudder.feishu.errors import FeishuError
from rudder.feishu.regions import Region
from rudder.services import Services

log = logging.getLogger(__name__)

MAX_SETUP_S = 10 * 60
MAX_POLL_FAILURES = 5  # consecutive unreachable/garbled answers before the setup fails  # "Setup sessions are short-lived": at most ten minutes
FINAL = ("connected", "denied", "expired", "failed")
DESCRIPTION = "Rudder agent {name}: talk to it in Feishu or Lark."


def _aad(session_id: str) -> str:
    return secret_aad("setup_sessions", session_id, "device_code")


def connected_region(row: SetupSession) -> Region | None:
    """The product the app ended on: the host that issued its secret (None until connected)."""
    if row.status != "connected":
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
                    SetupSession.agent_id == agent.id, SetupSession.status == "pending"
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
            await self._finish(old, "failed", texts.SETUP_REPLACED)
        self._spawn(row.id, begun.interval_s)
        return row

    def _spawn(self, setup_id: str, interval_s: float | None = None) -> None:
        task = self._tasks.get(setup_id)
        if task is None or task.done():
            self._tasks[setup_id] = asyncio.create_task(
                self._poll_loop(setup_id, interval_s), name=f"setup:{setup_id}"
            )

    async def resume(self) -> None:
        """After a restart: keep polling live sessions, expire the lapsed ones."""
        async with self.services.sessions() as session:
            rows = list(
                await session.scalars(select(SetupSession).where(SetupSession.status == "pending"))
            )
        for row in rows:
            if row.expires_at <= utcnow():
                await self._finish(row.id, "expired", texts.SETUP_EXPIRED)
            else:
                self._spawn(row.id)

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
        self, setup_id: str, status: str, error: str | None = None
    ) -> SetupSession | None:
        async with self.services.sessions() as session, session.begin():
            row = await session.get(SetupSession, setup_id)
            if row is None or row.status in FINAL:
                return None
            row.status, row.error, row.finished_at = status, error, utcnow()
            row.device_code_ciphertext = None  # no longer needed; don't keep secrets around
            activity.record(
                session,
                org_id=row.org_id,
                actor="system",
                action=f"feishu.setup_{status}",
                entity_type="setup_session",
                entity_id=row.id,
                details={"error": error}
                if error
                else ({"region": row.poll_host} if status == "connected" else {}),
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
            await self._finish(setup_id, "failed", f"Setup failed: {exc}")

    async def _poll(self, setup_id: str, interval_s: float | None = None) -> None:
        services = self.services
        async with services.sessions() as session:
            row = await session.get(SetupSession, setup_id)
            if row is None or row.status != "pending" or row.device_code_ciphertext is None:
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
                await self._finish(setup_id, "expired", texts.SETUP_EXPIRED)
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
                        "failed",
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
                    setup_id, "denied", texts.SETUP_DENIED.format(product=talking_to.label)
                )
                return
            if state is reg.PollState.EXPIRED:
                await self._finish(setup_id, "expired", texts.SETUP_EXPIRED)
                return
            if state is reg.PollState.ERROR:
                await self._finish(
                    setup_id,
                    "failed",
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
        if agent is None:
            await self._finish(setup_id, "failed", "The agent was deleted during setup.")
            return
        creds = connecting.Credentials(
            region=region, app_id=result.client_id, app_secret=result.client_secret
        )
        try:
            await connecting.connect(self.services, agent, creds, actor="system", via="setup")
        except DomainError as exc:
            await self._finish(setup_id, "failed", exc.detail)
            return
        await self._finish(setup_id, "connected")


async def get_setup(services: Services, setup_id: str) -> SetupSession:
    async with services.sessions() as session:
        row = await session.get(SetupSession, setup_id)
    if row is None:
        raise NotFound("setup session not found")
    return row


def poller(services: Services) -> SetupPoller:
    found = services.extras.get("feishu_setup")
    if found is None:
        found = services.extras["feishu_setup"] = SetupPoller(services)
    assert isinstance(found, SetupPoller)
    return found


async def shutdown(services: Services) -> None:
    found = services.extras.get("feishu_setup")
    if isinstance(found, SetupPoller):
        with contextlib.suppress(Exception):
            await found.close()
