"""Open host IM: send, reply, edit, card patch, reactions (reference §6)."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox import resources, threads
from rudder.sandbox.envelope import access_denied, authorize, fail, ok, read_json_object
from rudder.sandbox.state import App, Chat, Message, Reaction, new_message_id, now_ms

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

INVALID_PARAM = 230001
BOT_NOT_IN_CHAT = 230002
TARGET_RATE_LIMIT = 230020
TOO_LONG = 230025
NO_PERMISSION = 230027
CARD_TOO_OLD = 230031
NOT_SENDER = 230071
EDIT_LIMIT = 230072
FIELD_VALIDATION = 99992402

SEND_TYPES = {
    "text", "post", "image", "file", "audio", "media", "sticker",
    "interactive", "share_chat", "share_user", "system",
}  # fmt: skip
TEXT_LIMIT = 150 * 1024  # text ≤ 150 KB; card and post ≤ 30 KB (send doc, §6.7)
RICH_LIMIT = 30 * 1024
CARD_PATCH_WINDOW_S = 14 * 86400


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def check_content(msg_type: object, content: object) -> Response | dict[str, Any]:
    """Validate a send-side (msg_type, content string); answer like Feishu when invalid."""
    if not isinstance(msg_type, str) or msg_type not in SEND_TYPES:
        return fail(INVALID_PARAM, f"invalid msg_type: {msg_type!r}")
    if not isinstance(content, str) or not content:
        return fail(INVALID_PARAM, "content is required and must be a JSON string")
    size = len(content.encode())
    limit = TEXT_LIMIT if msg_type == "text" else RICH_LIMIT
    if msg_type in ("text", "post", "interactive") and size > limit:
        return fail(TOO_LONG, f"The message content is too long: {size} bytes > {limit}.")
    try:
        parsed = json.loads(content)
    except ValueError:
        return fail(INVALID_PARAM, "invalid message content: content is not valid JSON")
    if not isinstance(parsed, dict):
        return fail(INVALID_PARAM, "invalid message content: content must be a JSON object")
    if msg_type == "text" and not isinstance(parsed.get("text"), str):
        return fail(INVALID_PARAM, "invalid message content: text is required")
    return parsed


def target_gate(sandbox: Sandbox, chat: Chat) -> Response | None:
    # 5 QPS per user (p2p) or per group shared by all its bots → HTTP 400 + 230020 (§6.8).
    wait = sandbox.target_window.hit(
        ("chat", chat.chat_id), sandbox.settings.target_per_second, 1.0
    )
    if wait is not None:
        return fail(TARGET_RATE_LIMIT, "This operation triggers the frequency limit.")
    return None


def message_data(sandbox: Sandbox, message: Message) -> dict[str, Any]:
    sender: dict[str, Any] = {"id": message.sender_id, "sender_type": message.sender_type}
    if message.sender_type == "app":
        sender["id_type"] = "app_id"
        sender["tenant_key"] = sandbox.apps[message.sender_id].tenant_key
    else:
        sender["id_type"] = "user_id"
    data: dict[str, Any] = {
        "message_id": message.message_id,
        "msg_type": message.msg_type,
        "create_time": now_ms(message.create_time),
        "update_time": now_ms(message.update_time),
        "deleted": False,
        "updated": message.edits + message.patches > 0,
        "chat_id": message.chat_id,
        "sender": sender,
        "body": {"content": message.content},
    }
    for key in ("root_id", "parent_id", "thread_id"):
        value = getattr(message, key)
        if value:
            data[key] = value
    if message.mentions:
        data["mentions"] = [
            {"key": m.key, "id": m.user_id or m.app_id, "name": m.name} for m in message.mentions
        ]
    return data


def resolve_receiver(sandbox: Sandbox, app: App, id_type: str, receive_id: str) -> Chat | Response:
    if id_type == "chat_id":
        chat = sandbox.chats.get(receive_id)
        if chat is None:
            return fail(INVALID_PARAM, f"invalid receive_id: chat {receive_id} not found")
        if app.app_id not in chat.app_ids:
            return fail(BOT_NOT_IN_CHAT, "Bot is not in the chat.")
        return chat
    if id_type not in ("open_id", "union_id", "user_id"):
        return fail(INVALID_PARAM, f"receive_id_type {id_type} is not supported by the sandbox")
    for user in sandbox.users.values():
        ids = {
            "open_id": user.open_id(app.app_id),
            "union_id": user.union_id,
            "user_id": user.user_id,
        }
        if ids[id_type] == receive_id:
            chat = sandbox.p2p_chat(user.user_id, app.app_id)
            if chat is None:
                chat = sandbox.create_chat("p2p", [user.user_id], [app.app_id])
            return chat
    return fail(INVALID_PARAM, f"invalid receive_id: no user with {id_type} {receive_id}")


def add_bot_message(
    sandbox: Sandbox,
    app: App,
    chat: Chat,
    msg_type: str,
    content: str,
    parent: Message | None = None,
    in_thread: bool = False,
) -> Message:
    now = sandbox.clock.now()
    placement = threads.place(sandbox, chat, parent, in_thread)
    message = Message(
        message_id=new_message_id(),
        chat_id=chat.chat_id,
        sender_type="app",
        sender_id=app.app_id,
        msg_type=msg_type,
        content=content,
        create_time=now,
        update_time=now,
        parent_id=placement.parent_id,
        root_id=placement.root_id,
        thread_id=placement.thread_id,
    )
    threads.register(sandbox, message, placement)
    return sandbox.add_message(message)


async def _send_common(
    request: Request, api: str
) -> tuple[Sandbox, App, dict[str, Any]] | Response:
    sandbox = sandbox_of(request)
    app = authorize(sandbox, request, api)
    if isinstance(app, Response):
        return app
    body = await read_json_object(request)
    if body is None:
        return fail(INVALID_PARAM, "request body is not a JSON object")
    return sandbox, app, body


def _uuid(body: dict[str, Any]) -> str | None:
    value = body.get("uuid")
    return value if isinstance(value, str) and value else None


async def send(request: Request) -> Response:
    common = await _send_common(request, "im.message.create")
    if isinstance(common, Response):
        return common
    sandbox, app, body = common
    id_type = request.query_params.get("receive_id_type", "")
    receive_id = body.get("receive_id")
    if not id_type:
        return fail(FIELD_VALIDATION, "field validation failed: receive_id_type is required")
    if not isinstance(receive_id, str) or not receive_id:
        return fail(FIELD_VALIDATION, "field validation failed: receive_id is required")
    key = _uuid(body)
    if key is not None and (seen := sandbox.uuid_lookup(app.app_id, "send", key)) is not None:
        return ok(message_data(sandbox, seen))
    checked = check_content(body.get("msg_type"), body.get("content"))
    if isinstance(checked, Response):
        return checked
    media = resources.check_media(sandbox, app, str(body["msg_type"]), str(body["content"]))
    if media is not None:
        return media
    chat = resolve_receiver(sandbox, app, id_type, receive_id)
    if isinstance(chat, Response):
        return chat
    limited = target_gate(sandbox, chat)
    if limited is not None:
        return limited
    message = add_bot_message(sandbox, app, chat, str(body["msg_type"]), str(body["content"]))
    if key is not None:
        sandbox.uuid_remember(app.app_id, "send", key, message.message_id)
    return ok(message_data(sandbox, message))


def _visible_message(sandbox: Sandbox, app: App, message_id: str) -> Message | Response:
    message = sandbox.messages.get(message_id)
    if message is None:
        return fail(INVALID_PARAM, f"invalid message_id: {message_id}")
    chat = sandbox.chats.get(message.chat_id)
    if chat is None or app.app_id not in chat.app_ids:
        return fail(BOT_NOT_IN_CHAT, "Bot is not in the chat.")
    return message


async def reply(request: Request) -> Response:
    common = await _send_common(request, "im.message.reply")
    if isinstance(common, Response):
        return common
    sandbox, app, body = common
    parent = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(parent, Response):
        return parent
    key = _uuid(body)
    if key is not None and (seen := sandbox.uuid_lookup(app.app_id, "reply", key)) is not None:
        return ok(message_data(sandbox, seen))
    checked = check_content(body.get("msg_type"), body.get("content"))
    if isinstance(checked, Response):
        return checked
    media = resources.check_media(sandbox, app, str(body["msg_type"]), str(body["content"]))
    if media is not None:
        return media
    chat = sandbox.chats[parent.chat_id]
    limited = target_gate(sandbox, chat)
    if limited is not None:
        return limited
    in_thread = body.get("reply_in_thread") is True
    message = add_bot_message(
        sandbox, app, chat, str(body["msg_type"]), str(body["content"]), parent, in_thread
    )
    if key is not None:
        sandbox.uuid_remember(app.app_id, "reply", key, message.message_id)
    return ok(message_data(sandbox, message))


async def _own_message(
    request: Request, api: str
) -> tuple[Sandbox, App, Message, dict[str, Any]] | Response:
    common = await _send_common(request, api)
    if isinstance(common, Response):
        return common
    sandbox, app, body = common
    message = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(message, Response):
        return message
    if message.sender_type != "app" or message.sender_id != app.app_id:
        return fail(NOT_SENDER, "The operator is not the sender of the message.")
    return sandbox, app, message, body


async def edit(request: Request) -> Response:
    """PUT: edit a text or post message; at most 20 edits (edit doc, §6.3)."""
    found = await _own_message(request, "im.message.update")
    if isinstance(found, Response):
        return found
    sandbox, _app, message, body = found
    msg_type = body.get("msg_type")
    if msg_type not in ("text", "post") or message.msg_type not in ("text", "post"):
        return fail(INVALID_PARAM, "only text and post messages can be edited; use PATCH for cards")
    checked = check_content(msg_type, body.get("content"))
    if isinstance(checked, Response):
        return checked
    if message.edits >= sandbox.settings.edit_limit:
        return fail(EDIT_LIMIT, "The message has reached the number of times it can be edited.")
    limited = target_gate(sandbox, sandbox.chats[message.chat_id])
    if limited is not None:
        return limited
    message.msg_type, message.content = str(msg_type), str(body["content"])
    message.edits += 1
    message.update_time = sandbox.clock.now()
    sandbox.touch()
    return ok(message_data(sandbox, message))


async def patch_card(request: Request) -> Response:
    """PATCH: replace a card message's content (§6.4)."""
    found = await _own_message(request, "im.message.patch")
    if isinstance(found, Response):
        return found
    sandbox, _app, message, body = found
    if message.msg_type != "interactive":
        return fail(INVALID_PARAM, "only card (interactive) messages can be patched")
    checked = check_content("interactive", body.get("content"))
    if isinstance(checked, Response):
        return checked
    if sandbox.clock.now() - message.create_time > CARD_PATCH_WINDOW_S:
        return fail(CARD_TOO_OLD, "The card can only be updated within 14 days of sending.")
    limited = target_gate(sandbox, sandbox.chats[message.chat_id])
    if limited is not None:
        return limited
    message.content = str(body["content"])
    message.patches += 1
    message.update_time = sandbox.clock.now()
    sandbox.touch()
    return ok({})


async def get_message(request: Request) -> Response:
    sandbox = sandbox_of(request)
    app = authorize(sandbox, request, "im.message.get")
    if isinstance(app, Response):
        return app
    message = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(message, Response):
        return message
    return ok({"items": [message_data(sandbox, message)]})


def _reaction_data(app: App, reaction: Reaction) -> dict[str, Any]:
    return {
        "reaction_id": reaction.reaction_id,
        "operator": {"operator_id": reaction.operator_id, "operator_type": reaction.operator_type},
        "action_time": now_ms(reaction.action_time),
        "reaction_type": {"emoji_type": reaction.emoji_type},
    }


async def add_reaction(request: Request) -> Response:
    common = await _send_common(request, "im.message.reaction.create")
    if isinstance(common, Response):
        return common
    sandbox, app, body = common
    message = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(message, Response):
        return message
    reaction_type = body.get("reaction_type")
    emoji = reaction_type.get("emoji_type") if isinstance(reaction_type, dict) else None
    if not isinstance(emoji, str) or not emoji:
        return fail(INVALID_PARAM, "reaction_type.emoji_type is required")
    reaction = Reaction(
        reaction_id=secrets.token_urlsafe(24),
        emoji_type=emoji,
        operator_type="app",
        operator_id=app.app_id,
        action_time=sandbox.clock.now(),
    )
    message.reactions.append(reaction)
    sandbox.touch()
    return ok(_reaction_data(app, reaction))


async def delete_reaction(request: Request) -> Response:
    sandbox = sandbox_of(request)
    app = authorize(sandbox, request, "im.message.reaction.delete")
    if isinstance(app, Response):
        return app
    message = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(message, Response):
        return message
    reaction_id = request.path_params["reaction_id"]
    reaction = next((r for r in message.reactions if r.reaction_id == reaction_id), None)
    if reaction is None:
        return fail(INVALID_PARAM, f"invalid reaction_id: {reaction_id}")
    if reaction.operator_id != app.app_id:
        return fail(NO_PERMISSION, "The reaction was not added by this app.")
    message.reactions.remove(reaction)
    sandbox.touch()
    return ok(_reaction_data(app, reaction))


REACTION_READ_SCOPES = ("im:message.reactions:read", "im:message:readonly", "im:message")
REACTION_PAGE_MAX = 50


async def list_reactions(request: Request) -> Response:
    """`im.v1.message_reaction.list`: a message's reactions, newest last, optionally of one
    emoji type; pages of `page_size` (default 20, at most 50) with an opaque `page_token`."""
    sandbox = sandbox_of(request)
    app = authorize(sandbox, request, "im.message.reaction.list")
    if isinstance(app, Response):
        return app
    if not app.has_scope(*REACTION_READ_SCOPES):
        return access_denied(REACTION_READ_SCOPES)
    message = _visible_message(sandbox, app, request.path_params["message_id"])
    if isinstance(message, Response):
        return message
    query = request.query_params
    try:
        size = int(query.get("page_size") or 20)
        start = int(query.get("page_token") or 0)
    except ValueError:
        return fail(INVALID_PARAM, "page_size and page_token must be what this API returned")
    if not 1 <= size <= REACTION_PAGE_MAX or start < 0:
        return fail(INVALID_PARAM, f"page_size must be between 1 and {REACTION_PAGE_MAX}")
    emoji = query.get("reaction_type")
    found = [r for r in message.reactions if not emoji or r.emoji_type == emoji]
    page = found[start : start + size]
    more = start + size < len(found)
    data: dict[str, Any] = {"items": [_reaction_data(app, r) for r in page], "has_more": more}
    if more:
        data["page_token"] = str(start + size)
    return ok(data)


CHAT_READ_SCOPES = ("im:chat:readonly", "im:chat")


async def get_chat(request: Request) -> Response:
    """`im.v1.chat.get`: the chat's name and kind, for an app that is in it."""
    sandbox = sandbox_of(request)
    app = authorize(sandbox, request, "im.chat.get")
    if isinstance(app, Response):
        return app
    if not app.has_scope(*CHAT_READ_SCOPES):
        return access_denied(CHAT_READ_SCOPES)
    chat = sandbox.chats.get(request.path_params["chat_id"])
    if chat is None:
        return fail(INVALID_PARAM, "invalid chat_id")
    if app.app_id not in chat.app_ids:
        return fail(BOT_NOT_IN_CHAT, "Bot is not in the chat.")
    return ok(
        {
            "name": chat.name if chat.chat_type == "group" else "",
            "description": "",
            "chat_mode": chat.chat_mode,
            "chat_type": "private",
            "chat_tag": "inner",
            "external": False,
            "tenant_key": app.tenant_key,
            "user_count": str(len(chat.user_ids)),
            "bot_count": str(len(chat.app_ids)),
        }
    )


_M = "/open-apis/im/v1/messages"
routes = [
    Route("/open-apis/im/v1/chats/{chat_id}", get_chat, methods=["GET"]),
    Route(_M, send, methods=["POST"]),
    Route(_M + "/{message_id}/reply", reply, methods=["POST"]),
    Route(_M + "/{message_id}", edit, methods=["PUT"]),
    Route(_M + "/{message_id}", patch_card, methods=["PATCH"]),
    Route(_M + "/{message_id}", get_message, methods=["GET"]),
    Route(_M + "/{message_id}/reactions", add_reaction, methods=["POST"]),
    Route(_M + "/{message_id}/reactions", list_reactions, methods=["GET"]),
    Route(_M + "/{message_id}/reactions/{reaction_id}", delete_reaction, methods=["DELETE"]),
]
