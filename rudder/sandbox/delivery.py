"""At-least-once event delivery with Feishu's retry ladder, over either transport."""

from __future__ import annotations

import asyncio
import enum
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rudder.sandbox.state import App, DeliveryMode
from rudder.sandbox.webhook import compact_json

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # first push or a retry is scheduled
    ACKED = "acked"  # the receiver answered success
    FAILED = "failed"  # the ladder is exhausted


@dataclass(slots=True)
class Attempt:
    at: float
    transport: str
    ok: bool
    detail: str
    connection_id: str | None = None


@dataclass(slots=True)
class Delivery:
    delivery_id: str
    app_id: str
    event_id: str
    event_type: str
    event: dict[str, Any]
    created_at: float
    attempts: list[Attempt] = field(default_factory=list)
    status: DeliveryStatus = DeliveryStatus.PENDING
    acked_at: float | None = None  # when the receiver's success answer came in
    ack_order: int | None = None  # its place in Sandbox.order (acks and downloads)

    @property
    def acked(self) -> bool:
        return self.status is DeliveryStatus.ACKED

    def public(self, include_event: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {
            "delivery_id": self.delivery_id,
            "app": self.app_id,
            "app_id": self.app_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempts": len(self.attempts),
            "acked": self.acked,
            "status": self.status.value,
            "created_at": self.created_at,
            "acked_at": self.acked_at,
            "ack_order": self.ack_order,
            "history": [
                {
                    "at": a.at,
                    "transport": a.transport,
                    "ok": a.ok,
                    "detail": a.detail,
                    "connection_id": a.connection_id,
                }
                for a in self.attempts
            ],
        }
        if include_event:
            view["event"] = self.event
        return view


class DeliveryEngine:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self.deliveries: list[Delivery] = []

    def acked_message(self, app_id: str, message_id: str) -> Delivery | None:
        """The acked delivery to `app_id` of the event that carried `message_id`, if any."""
        for d in self.deliveries:
            event = d.event.get("event")
            message = event.get("message") if isinstance(event, dict) else None
            if (
                d.app_id == app_id
                and d.ack_order is not None
                and isinstance(message, dict)
                and message.get("message_id") == message_id
            ):
                return d
        return None

    def enqueue(self, app: App, event: dict[str, Any]) -> Delivery:
        header = event.get("header", {})
        delivery = Delivery(
            delivery_id=secrets.token_hex(8),
            app_id=app.app_id,
            event_id=str(header.get("event_id", "")),
            event_type=str(header.get("event_type", "")),
            event=event,
            created_at=self._sandbox.clock.now(),
        )
        self.deliveries.append(delivery)
        self._sandbox.spawn(self._run(delivery))
        return delivery

    async def _run(self, delivery: Delivery) -> None:
        sandbox = self._sandbox
        if await self._attempt(delivery):
            return
        # Re-pushed at 15 s, 5 min, 1 h, 6 h (reference §7.5), compressed by the clock factor.
        for wait in list(sandbox.settings.retry_ladder_s):
            await asyncio.sleep(sandbox.clock.scaled(wait))
            if await self._attempt(delivery):
                return
        delivery.status = DeliveryStatus.FAILED
        sandbox.touch()

    async def _attempt(self, delivery: Delivery) -> bool:
        sandbox = self._sandbox
        app = sandbox.apps.get(delivery.app_id)
        if app is None:
            delivery.attempts.append(Attempt(sandbox.clock.now(), "none", False, "app deleted"))
            return False
        payload = compact_json(delivery.event)
        started = sandbox.clock.now()
        if app.event_delivery is DeliveryMode.WEBHOOK:
            ok, detail = await sandbox.webhooks.deliver(app, payload)
            attempt = Attempt(started, "webhook", ok, detail)
        else:
            ok, detail, conn_id = await sandbox.hub.deliver(app.app_id, payload)
            attempt = Attempt(started, "long_connection", ok, detail, conn_id)
        delivery.attempts.append(attempt)
        if ok:
            delivery.status = DeliveryStatus.ACKED
            if delivery.ack_order is None:
                delivery.acked_at, delivery.ack_order = sandbox.clock.now(), sandbox.next_order()
        sandbox.touch()
        return ok
