"""Card callbacks (`card.action.trigger`): a person presses a button, the bot answers.

Feishu pushes the callback the same way it pushes events — a `type=event` DATA frame on the
long connection, or a POST to the request URL — but waits for the answer: the ack's payload
carries `{"code":200,"data":"<base64 of the JSON response>"}` (reference §8.6), the webhook's
HTTP 200 body is the JSON response. The answer must come within 3 s, else the person sees an
error and nothing is applied; callbacks are not re-pushed later. The response may hold a
`toast` (shown to the person who pressed) and a `card` (`{"type":"raw","data":<card JSON>}` or
`{"type":"template","data":{template_id, …}}`) that replaces the card.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.routing import Route

from rudder.sandbox import events, render
from rudder.sandbox.control import endpoint, string_field
from rudder.sandbox.core import SandboxError
from rudder.sandbox.state import App, DeliveryMode, Message, User
from rudder.sandbox.webhook import compact_json

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

EVENT_TYPE = "card.action.trigger"
TOAST_TYPES = ("info", "success", "error", "warning")


@dataclass(slots=True)
class CallbackRecord:
    callback_id: str
    app_id: str
    message_id: str
    chat_id: str
    user_id: str
    event: dict[str, Any]
    at: float
    transport: str = ""
    status: str = "pending"  # answered | timeout | error | not_subscribed
    detail: str = ""
    elapsed_ms: int = 0
    response: dict[str, Any] | None = None
    card_updated: bool = False
    redelivery_of: str | None = None

    @property
    def event_id(self) -> str:
        return str(self.event["header"]["event_id"])

    def public(self) -> dict[str, Any]:
        toast = (self.response or {}).get("toast") if self.status == "answered" else None
        return {
            "callback_id": self.callback_id,
            "event_id": self.event_id,
            "app_id": self.app_id,
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "action": self.event["event"]["action"],
            "transport": self.transport,
            "status": self.status,
            "detail": self.detail,
            "elapsed_ms": self.elapsed_ms,
            "response": self.response,
            "toast": toast,
            "card_updated": self.card_updated,
            "redelivery_of": self.redelivery_of,
            "at": self.at,
        }


def callback_event(
    sandbox: Sandbox, app: App, message: Message, user: User, action: dict[str, Any]
) -> dict[str, Any]:
    ids = events.user_id_triple(user, app.app_id)
    event = {
        "operator": {"tenant_key": app.tenant_key, **ids},
        "token": "c-" + secrets.token_hex(16),  # for delayed card updates
        "action": action,
        "host": "im_message",
        "context": {"open_message_id": message.message_id, "open_chat_id": message.chat_id},
    }
    return events.envelope(app, EVENT_TYPE, event, sandbox.clock.now())


def _decode_ack(payload: bytes | None) -> tuple[dict[str, Any] | None, str]:
    try:
        ack = json.loads(payload or b"")
    except (ValueError, UnicodeDecodeError):
        return None, "ack payload is not JSON"
    if not isinstance(ack, dict) or ack.get("code") != 200:
        return None, f"ack code {ack.get('code') if isinstance(ack, dict) else None}"
    data = ack.get("data")
    if not data:
        return {}, "acked without a response"
    try:
        response = json.loads(base64.b64decode(data))
    except (ValueError, TypeError, binascii.Error):
        return None, "ack data is not base64 JSON"
    return (
        (response, "answered") if isinstance(response, dict) else (None, "response not an object")
    )


async def _exchange(sandbox: Sandbox, app: App, record: CallbackRecord) -> None:
    payload = compact_json(record.event)
    timeout = sandbox.settings.callback_timeout_s
    if app.event_delivery is DeliveryMode.WEBHOOK:
        record.transport = "webhook"
        try:
            answer = await asyncio.wait_for(sandbox.webhooks.exchange(app, payload), timeout)
        except TimeoutError:
            record.status, record.detail = "timeout", f"no answer within {timeout:g} s"
            return
        except (httpx.HTTPError, OSError) as exc:
            record.status, record.detail = "error", f"{type(exc).__name__}: {exc}"
            return
        if answer.status_code != 200:
            record.status, record.detail = "error", f"HTTP {answer.status_code}"
            return
        try:
            body = json.loads(answer.content) if answer.content.strip() else {}
        except ValueError:
            record.status, record.detail = "error", "response body is not JSON"
            return
        if not isinstance(body, dict):
            record.status, record.detail = "error", "response body is not a JSON object"
            return
        record.status, record.detail, record.response = "answered", "HTTP 200", body
        return
    record.transport = "long_connection"
    detail, ack = await sandbox.hub.exchange(app.app_id, payload, timeout)
    if ack is None:
        record.status = "timeout" if detail.startswith("no answer") else "error"
        record.detail = detail
        return
    response, detail = _decode_ack(ack)
    record.detail = detail
    if response is None:
        record.status = "error"
        return
    record.status, record.response = "answered", response


def _apply(sandbox: Sandbox, message: Message, record: CallbackRecord) -> None:
    response = record.response or {}
    toast = response.get("toast")
    if toast is not None and (
        not isinstance(toast, dict) or toast.get("type", "info") not in TOAST_TYPES
    ):
        record.status, record.detail = "error", "invalid toast in the response"
        return
    card = response.get("card")
    if card is None:
        return
    if not isinstance(card, dict) or card.get("type") not in ("raw", "template"):
        record.status, record.detail = "error", "card.type must be raw or template"
        return
    data = card.get("data")
    if not isinstance(data, dict):
        record.status, record.detail = "error", "card.data must be an object"
        return
    content = render.parse_content(message.content)
    entity_id = content.get("data", {}).get("card_id") if content.get("type") == "card" else None
    if card["type"] == "raw" and entity_id in sandbox.cards:
        sandbox.cards[entity_id].data = data
    elif card["type"] == "raw":
        message.content = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    else:
        message.content = json.dumps(
            {"type": "template", "data": data}, ensure_ascii=False, separators=(",", ":")
        )
    message.patches += 1
    message.update_time = sandbox.clock.now()
    record.card_updated = True


async def deliver(
    sandbox: Sandbox,
    app: App,
    message: Message,
    user: User,
    event: dict[str, Any],
    redelivery_of: str | None = None,
) -> CallbackRecord:
    record = CallbackRecord(
        callback_id=secrets.token_hex(8),
        app_id=app.app_id,
        message_id=message.message_id,
        chat_id=message.chat_id,
        user_id=user.user_id,
        event=event,
        at=sandbox.clock.now(),
        redelivery_of=redelivery_of,
    )
    sandbox.callbacks.append(record)
    started = time.monotonic()
    if EVENT_TYPE not in app.callback_types:
        record.status, record.detail = (
            "not_subscribed",
            "the app does not subscribe to the callback",
        )
    else:
        await _exchange(sandbox, app, record)
        if record.status == "answered":
            _apply(sandbox, message, record)
    record.elapsed_ms = int((time.monotonic() - started) * 1000)
    sandbox.touch()
    return record


def _action(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("value", {})
    if not isinstance(value, dict):
        raise SandboxError("value must be an object (a button's value)")
    action: dict[str, Any] = {
        "value": value,
        "tag": string_field(body, "tag", required=False, default="button") or "button",
    }
    for key in ("name", "option", "input_value", "timezone"):
        if body.get(key) is not None:
            action[key] = string_field(body, key)
    if body.get("form_value") is not None:
        if not isinstance(body["form_value"], dict):
            raise SandboxError("form_value must be an object")
        action["form_value"] = body["form_value"]
    if body.get("checked") is not None:
        action["checked"] = body["checked"] is True
    return action


async def press(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    """POST /messages/{message_id}/actions {user_id, value, tag?, name?, …}: press a button."""
    message = sandbox.messages.get(request.path_params["message_id"])
    if message is None:
        raise SandboxError("unknown message", 404, "not_found")
    if message.msg_type != "interactive" or message.sender_type != "app":
        raise SandboxError("only a bot's card (interactive message) has buttons to press")
    user = sandbox.user(body.get("user_id"))
    chat = sandbox.chat(message.chat_id)
    if user.user_id not in chat.user_ids:
        raise SandboxError("the user is not a member of the card's chat")
    app = sandbox.app(message.sender_id)
    event = callback_event(sandbox, app, message, user, _action(body))
    record = await deliver(sandbox, app, message, user, event)
    return record.public()


async def redeliver(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    """Push a recorded callback again with the same event_id (Feishu's at-least-once)."""
    callback_id = request.path_params["callback_id"]
    original = next((c for c in sandbox.callbacks if c.callback_id == callback_id), None)
    if original is None:
        raise SandboxError("unknown callback", 404, "not_found")
    message = sandbox.messages[original.message_id]
    app = sandbox.app(original.app_id)
    user = sandbox.user(original.user_id)
    record = await deliver(sandbox, app, message, user, original.event, original.callback_id)
    return record.public()


async def list_callbacks(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    q = request.query_params
    items = [
        c.public()
        for c in sandbox.callbacks
        if (not q.get("app_id") or c.app_id == q["app_id"])
        and (not q.get("message_id") or c.message_id == q["message_id"])
    ]
    return {"items": items}


_A = "/_sandbox/api"
routes = [
    Route(_A + "/messages/{message_id}/actions", endpoint(press), methods=["POST"]),
    Route(_A + "/callbacks", endpoint(list_callbacks), methods=["GET"]),
    Route(_A + "/callbacks/{callback_id}/redeliver", endpoint(redeliver), methods=["POST"]),
]
