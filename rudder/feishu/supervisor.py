"""One long connection per connected bot, all in this process's event loop.

Starts a connection when an integration becomes connected (and at start-up for those already
connected), stops it on disconnect, and keeps each bot's connection state for the API. A
connection that fails for good (bad credentials, too many connections) puts the integration in
`error` with the readable reason.

With PostgreSQL several instances share the bots: a `LeaseGate` (`rudder.scale.coordinator`)
then decides which bots this process connects, and an event is acked only while this
process's lease on the bot is still good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict
from typing import Any, Protocol

from sqlalchemy import select

from rudder.db.models import Integration
from rudder.feishu import card_actions
from rudder.feishu import connect as connecting
from rudder.feishu.bots import forget
from rudder.feishu.events import EventError, parse_event
from rudder.feishu.inbound import InboundPipeline
from rudder.feishu.longconn import (
    ACK_FAILED,
    AckResult,
    ConnectionState,
    ConnectionStatus,
    LongConnection,
    Timings,
)
from rudder.feishu.longconn_state import ACK_OK
from rudder.feishu.regions import Region
from rudder.services import Services

log = logging.getLogger(__name__)


class LeaseGate(Protocol):
    def may_ack(self, integration_id: str) -> bool: ...

    async def changed(self, integration_id: str) -> None: ...


class Supervisor:
    def __init__(
        self,
        services: Services,
        pipeline: InboundPipeline,
        timings: Timings | None = None,
        gate: LeaseGate | None = None,
    ) -> None:
        self.services = services
        self.pipeline = pipeline
        self.timings = timings
        self.gate = gate
        self._connections: dict[str, LongConnection] = {}
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def start(self) -> None:
        connecting.listeners(self.services).append(self._on_integration)
        if self.gate is not None:
            return  # the gate connects the bots whose leases this process holds
        async with self.services.sessions() as session:
            ids = list(
                await session.scalars(
                    select(Integration.id).where(
                        Integration.status == "connected",
                        Integration.transport == "long_connection",
                    )
                )
            )
        for integration_id in ids:
            await self.ensure(integration_id)

    async def close(self) -> None:
        await asyncio.gather(
            *(self.stop(i) for i in list(self._connections)), return_exceptions=True
        )

    def has(self, integration_id: str) -> bool:
        return integration_id in self._connections

    def state_of(self, integration_id: str) -> dict[str, Any] | None:
        conn = self._connections.get(integration_id)
        return asdict(conn.state) if conn is not None else None

    async def _on_integration(self, event: str, integration_id: str) -> None:
        forget(self.services, integration_id)
        if self.gate is not None:
            await self.gate.changed(integration_id)
            return
        await self.stop(integration_id)
        if event == "connected":
            await self.ensure(integration_id)

    async def ensure(self, integration_id: str) -> None:
        async with self.services.sessions() as session:
            integration = await session.get(Integration, integration_id)
        if (
            integration is None
            or integration.status != "connected"
            or integration.transport != "long_connection"
        ):
            return
        if integration_id in self._connections or not integration.app_id:
            return
        secret = await connecting.app_secret(self.services, integration)

        gate = self.gate

        async def on_event(payload: bytes) -> AckResult:
            if gate is not None and not gate.may_ack(integration_id):
                # Our lease is lapsing: Feishu pushes it again, to the bot's next holder.
                return ACK_FAILED
            try:
                event = parse_event(payload)
                if card_actions.is_callback(event):
                    # A button press waits for its answer, which rides in the ack (§8.6).
                    response = await card_actions.answer(self.services, integration_id, event)
                    return AckResult(data=json.dumps(response, ensure_ascii=False).encode())
                await self.pipeline.receive(integration_id, event)
            except EventError as exc:
                # Malformed or unknown: logged and acked, never retried forever (STYLE §5).
                log.warning(
                    "bot %s: unreadable event acked and dropped: %s", integration.app_id, exc
                )
                return ACK_OK
            except Exception:
                log.exception(
                    "bot %s: could not record an event; Feishu will re-push it", integration.app_id
                )
                return ACK_FAILED
            return ACK_OK

        def on_state(state: ConnectionState) -> None:
            if state.status is ConnectionStatus.FAILED:
                asyncio.get_running_loop().create_task(
                    self._mark_error(integration_id, state.last_error or "connection failed")
                )

        conn = LongConnection(
            integration.app_id,
            secret,
            Region(integration.region),
            http=self.services.http,
            on_event=on_event,
            on_state=on_state,
            base_url_override=self.services.settings.feishu_base_url,
            timings=self.timings,
        )
        self._connections[integration_id] = conn
        self._tasks[integration_id] = asyncio.create_task(
            conn.run(), name=f"longconn:{integration.app_id}"
        )

    async def stop(self, integration_id: str) -> None:
        conn = self._connections.pop(integration_id, None)
        task = self._tasks.pop(integration_id, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.stop(), 5)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({task}, timeout=2)

    async def _mark_error(self, integration_id: str, reason: str) -> None:
        async with self.services.sessions() as session, session.begin():
            integration = await session.get(Integration, integration_id)
            if integration is not None and integration.status == "connected":
                integration.status = "error"
                integration.last_error = reason
        self._connections.pop(integration_id, None)
        self._tasks.pop(integration_id, None)


def supervisor(services: Services) -> Supervisor | None:
    return services.components.supervisor


def connection_state(services: Services, integration_id: str) -> dict[str, Any] | None:
    """The long connection of a bot as this process sees it (None when it holds none)."""
    found = services.components.supervisor
    return found.state_of(integration_id) if found is not None else None
