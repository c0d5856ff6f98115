"""The test-control API under /_sandbox/api: apps, registrations, users, chats, messages.

Deliveries, faults and the clock are in ``control_faults``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox import events
from rudder.sandbox.core import SandboxError
from rudder.sandbox.envelope import control_error, json_response, read_json_object
from rudder.sandbox.registration import approve, deny, find_by_user_code
from rudder.sandbox.state import BRANDS, Brand, DeliveryMode, Registration

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

Handler = Callable[["Sandbox", Request, dict[str, Any]], Awaitable[Any]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Parse the JSON body, run the handler, and turn SandboxError into {error, detail}."""

    async def run(request: Request) -> Response:
        sandbox: Sandbox = request.app.state.sandbox
        body: dict[str, Any] | None = {}
        if request.method in ("POST", "PATCH", "PUT"):
            body = await read_json_object(request)
            if body is None:
                return control_error(400, "invalid_json", "the body must be a JSON object")
        try:
            result = await handler(sandbox, request, body or {})
        except SandboxError as exc:
            return control_error(exc.status, exc.error, str(exc))
        if isinstance(result, Response):
            return result
        return json_response(result)

    return run


def string_field(body: dict[str, Any], key: str, required: bool = True, default: str = "") -> str:
    value = body.get(key, default)
    if value is None and not required:
        return default
    if not isinstance(value, str) or (required and not value):
        raise SandboxError(
            f"{key} must be a non-empty string" if required else f"{key} must be a string"
        )
    return value


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SandboxError(f"{key} must be a list of strings")
    return list(value)


def _brand(value: object, default: Brand = "feishu") -> Brand:
    if value is None:
        return default
    for brand in BRANDS:
        if value == brand:
            return brand
    raise SandboxError("brand must be feishu or lark")


# -- apps ---------------------------------------------------------------------------------


async def create_app(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app = sandbox.create_app(
        string_field(body, "name", required=False, default="Sandbox Bot") or "Sandbox Bot",
        _brand(body.get("brand")),
    )
    if body.get("scopes") is not None:
        app.scopes = _str_list(body, "scopes")
    return app.public()


async def list_apps(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return {"items": [a.public() for a in sandbox.apps.values()]}


async def get_app(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app = sandbox.app(request.path_params["app_id"])
    view = app.public()
    view["connections"] = [
        {"connection_id": c.conn_id, "frames_in": c.frames_in} for c in sandbox.hub.live(app.app_id)
    ]
    return view


async def patch_app(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app = sandbox.app(request.path_params["app_id"])
    if "event_delivery" in body:
        try:
            mode = DeliveryMode(body["event_delivery"])
        except ValueError:
            raise SandboxError("event_delivery must be long_connection or webhook") from None
    else:
        mode = app.event_delivery
    for key in ("webhook_url", "encrypt_key", "verification_token", "name"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            raise SandboxError(f"{key} must be a string")
    if mode is DeliveryMode.WEBHOOK and not (body.get("webhook_url") or app.webhook_url):
        raise SandboxError("webhook delivery needs a webhook_url")
    app.event_delivery = mode
    if "webhook_url" in body:
        app.webhook_url = body["webhook_url"] or None
    if "encrypt_key" in body:
        app.encrypt_key = body["encrypt_key"] or ""
    if body.get("verification_token"):
        app.verification_token = body["verification_token"]
    if body.get("name"):
        app.name = body["name"]
    if "event_types" in body:
        app.event_types = _str_list(body, "event_types")
    if "receive_all_group_messages" in body:
        app.receive_all_group_messages = bool(body["receive_all_group_messages"])
    if "scopes" in body:
        app.scopes = None if body["scopes"] is None else _str_list(body, "scopes")
    if "callback_types" in body:
        app.callback_types = _str_list(body, "callback_types")
    sandbox.touch()
    view = app.public()
    # Saving a request URL in the console triggers url_verification (reference §7.1).
    if mode is DeliveryMode.WEBHOOK and "webhook_url" in body and body.get("verify", True):
        view["url_verification"] = await sandbox.webhooks.url_verification(app)
    return view


async def app_slash_commands(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app = sandbox.app(request.path_params["app_id"])
    return {"items": [c.public() for c in sandbox.slash_commands.get(app.app_id, {}).values()]}


async def inject_event(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    """Deliver an event: {"envelope": {...}} as-is, or {"event_type", "event"} wrapped."""
    app = sandbox.app(request.path_params["app_id"])
    raw = body.get("envelope")
    if isinstance(raw, dict):
        header = raw.get("header")
        if not isinstance(header, dict) or not header.get("event_id"):
            raise SandboxError("envelope.header.event_id is required")
        envelope = raw
    else:
        event = body.get("event")
        if not isinstance(event, dict):
            raise SandboxError("event must be an object")
        envelope = events.envelope(
            app, string_field(body, "event_type"), event, sandbox.clock.now()
        )
    delivery = sandbox.deliveries.enqueue(app, envelope)
    return {"event_id": delivery.event_id, "delivery_id": delivery.delivery_id}


async def url_verification(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return await sandbox.webhooks.url_verification(sandbox.app(request.path_params["app_id"]))


# -- registrations ------------------------------------------------------------------------


def _registration(sandbox: Sandbox, request: Request) -> Registration:
    reg = find_by_user_code(sandbox, request.path_params["user_code"])
    if reg is None:
        raise SandboxError("unknown user_code", 404, "not_found")
    if reg.expired(sandbox.clock.now()):
        raise SandboxError("the registration has expired", 410, "expired")
    return reg


async def approve_registration(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    reg = _registration(sandbox, request)
    user_name = body.get("user_name")
    app_name = body.get("app_name")
    brand = _brand(body["brand"]) if body.get("brand") is not None else None
    return approve(
        sandbox,
        reg,
        user_name if isinstance(user_name, str) else None,
        brand,
        app_name if isinstance(app_name, str) else None,
    )


async def deny_registration(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return deny(sandbox, _registration(sandbox, request))


async def list_registrations(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    now = sandbox.clock.now()
    items = [r.public(now) for r in sandbox.registrations.values()]
    status = request.query_params.get("status")
    if status:
        items = [i for i in items if i["status"] == status and not i["expired"]]
    return {"items": items}


async def get_registration(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    reg = find_by_user_code(sandbox, request.path_params["user_code"])
    if reg is None:
        raise SandboxError("unknown user_code", 404, "not_found")
    return reg.public(sandbox.clock.now())


# -- users and chats ----------------------------------------------------------------------


async def create_user(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    user = sandbox.create_user(string_field(body, "name"))
    return user.public()


async def list_users(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app_id = request.query_params.get("app_id")
    items = []
    for user in sandbox.users.values():
        view = user.public()
        if app_id:
            view["open_id"] = user.open_id(app_id)
        items.append(view)
    return {"items": items}


async def get_user(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    user = sandbox.user(request.path_params["user_id"])
    view = user.public()
    view["open_ids"] = {app_id: user.open_id(app_id) for app_id in sandbox.apps}
    return view


async def create_chat(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    name = body.get("name")
    mode = body.get("chat_mode")
    chat = sandbox.create_chat(
        string_field(body, "type"),
        _str_list(body, "user_ids"),
        _str_list(body, "app_ids"),
        name if isinstance(name, str) else None,
        mode if isinstance(mode, str) else None,
    )
    chat.history_before_join = body.get("history_before_join") is True
    return chat.public()


async def list_chats(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    user_id = request.query_params.get("user_id")
    chats = [c for c in sandbox.chats.values() if not user_id or user_id in c.user_ids]
    return {"items": [c.public() for c in chats]}


async def get_chat(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return sandbox.chat(request.path_params["chat_id"]).public()


def _content(body: dict[str, Any], msg_type: str) -> dict[str, Any]:
    content = body.get("content")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            raise SandboxError("content must be JSON") from None
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise SandboxError("content must be an object")
    if msg_type == "text":
        text = body.get("text", content.get("text", ""))
        if not isinstance(text, str):
            raise SandboxError("text must be a string")
        return {**content, "text": text}
    # Media without `content` are built from stored bytes (control_media.user_content).
    if not content and msg_type == "post":
        return {"title": "", "content": [[{"tag": "text", "text": str(body.get("text", ""))}]]}
    return content


async def post_message(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    chat = sandbox.chat(request.path_params["chat_id"])
    user = sandbox.user(body.get("user_id"))
    msg_type = string_field(body, "message_type", required=False, default="text") or "text"
    if msg_type not in (
        "text",
        "post",
        "image",
        "file",
        "audio",
        "media",
        "sticker",
        "interactive",
    ):
        raise SandboxError(f"unsupported message_type {msg_type!r}")
    parent_id = body.get("parent_id", body.get("reply_to"))
    if parent_id is not None and (
        not isinstance(parent_id, str) or parent_id not in sandbox.messages
    ):
        raise SandboxError("unknown parent_id")
    thread_id = body.get("thread_id")
    if thread_id is not None and not isinstance(thread_id, str):
        raise SandboxError("thread_id must be a string")
    # Deferred: control_media builds on this module's endpoint().
    from rudder.sandbox.control_media import user_content

    if user.user_id not in chat.user_ids:
        raise SandboxError("the user is not a member of this chat")
    content = user_content(sandbox, body, msg_type)
    before = len(sandbox.deliveries.deliveries)
    message = sandbox.post_user_message(
        chat,
        user,
        msg_type,
        content if content is not None else _content(body, msg_type),
        _str_list(body, "mention_app_ids"),
        _str_list(body, "mention_user_ids"),
        body.get("mention_all") is True,
        parent_id,
        thread_id,
    )
    new = sandbox.deliveries.deliveries[before:]
    return {
        "message_id": message.message_id,
        "event_ids": [d.event_id for d in new],
        "thread_id": message.thread_id,
        "root_id": message.root_id,
        "content": message.content,
    }


async def list_messages(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    chat = sandbox.chat(request.path_params["chat_id"])
    ids = sandbox.chat_messages.get(chat.chat_id, [])
    return {"items": [sandbox.message_view(sandbox.messages[i]) for i in ids]}


async def add_bot(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    chat = sandbox.chat(request.path_params["chat_id"])
    operator = sandbox.user(body["user_id"]) if body.get("user_id") else None
    sandbox.set_bot_membership(chat, sandbox.app(body.get("app_id")), True, operator)
    return chat.public()


async def remove_bot(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    chat = sandbox.chat(request.path_params["chat_id"])
    sandbox.set_bot_membership(chat, sandbox.app(request.path_params["app_id"]), False, None)
    return chat.public()


_A = "/_sandbox/api"
routes = [
    Route(_A + "/apps", endpoint(create_app), methods=["POST"]),
    Route(_A + "/apps", endpoint(list_apps), methods=["GET"]),
    Route(_A + "/apps/{app_id}", endpoint(get_app), methods=["GET"]),
    Route(_A + "/apps/{app_id}", endpoint(patch_app), methods=["PATCH"]),
    Route(_A + "/apps/{app_id}/slash_commands", endpoint(app_slash_commands), methods=["GET"]),
    Route(_A + "/apps/{app_id}/events", endpoint(inject_event), methods=["POST"]),
    Route(_A + "/apps/{app_id}/url_verification", endpoint(url_verification), methods=["POST"]),
    Route(_A + "/registrations", endpoint(list_registrations), methods=["GET"]),
    Route(_A + "/registrations/{user_code}", endpoint(get_registration), methods=["GET"]),
    Route(
        _A + "/registrations/{user_code}/approve", endpoint(approve_registration), methods=["POST"]
    ),
    Route(_A + "/registrations/{user_code}/deny", endpoint(deny_registration), methods=["POST"]),
    Route(_A + "/users", endpoint(create_user), methods=["POST"]),
    Route(_A + "/users", endpoint(list_users), methods=["GET"]),
    Route(_A + "/users/{user_id}", endpoint(get_user), methods=["GET"]),
    Route(_A + "/chats", endpoint(create_chat), methods=["POST"]),
    Route(_A + "/chats", endpoint(list_chats), methods=["GET"]),
    Route(_A + "/chats/{chat_id}", endpoint(get_chat), methods=["GET"]),
    Route(_A + "/chats/{chat_id}/messages", endpoint(post_message), methods=["POST"]),
    Route(_A + "/chats/{chat_id}/messages", endpoint(list_messages), methods=["GET"]),
    Route(_A + "/chats/{chat_id}/bots", endpoint(add_bot), methods=["POST"]),
    Route(_A + "/chats/{chat_id}/bots/{app_id}", endpoint(remove_bot), methods=["DELETE"]),
]
