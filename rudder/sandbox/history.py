"""Message history: `GET /open-apis/im/v1/messages` (message.list doc).

Any one of im:message, im:message:readonly or im:message.history:readonly allows the call, and
only p2p history is readable with it: a group's history also needs "read all messages in
groups" (im:message.group_msg). The bot must be in the chat, and it never sees what was said
before it joined (unless a test made the chat with `history_before_join`, to prove a client cuts
that off itself). `container_id_type=chat` lists a chat's messages without the replies inside
threads (their roots only); `thread` lists one thread, root included (no time range there).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox import threads
from rudder.sandbox.envelope import access_denied, authorize, fail, ok
from rudder.sandbox.state import App, Chat, Message

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

INVALID_PARAM = 230001
BOT_NOT_IN_CHAT = 230002
FIELD_VALIDATION = 99992402
READ_SCOPES = ("im:message", "im:message:readonly", "im:message.history:readonly")
GROUP_SCOPES = ("im:message.group_msg",)
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 50


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode())).get("o")
    except (ValueError, binascii.Error, AttributeError):
        return None
    return value if isinstance(value, int) and value >= 0 else None


def _seconds(raw: str | None, name: str) -> int | Response | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        return fail(FIELD_VALIDATION, f"field validation failed: {name} must be seconds")
    return int(raw)


def history_item(sandbox: Sandbox, app: App, message: Message, with_name: bool) -> dict[str, Any]:
    """One message as message.list / message.get return it to ``app``."""
    if message.sender_type == "app":
        sender: dict[str, Any] = {"id": message.sender_id, "id_type": "app_id"}
        name = sandbox.apps[message.sender_id].name
    else:
        user = sandbox.users[message.sender_id]
        sender = {"id": user.open_id(app.app_id), "id_type": "open_id"}
        name = user.name
    sender.update(sender_type=message.sender_type, tenant_key=app.tenant_key)
    if with_name:
        sender["sender_name"] = name
    item: dict[str, Any] = {
        "message_id": message.message_id,
        "msg_type": message.msg_type,
        "create_time": str(int(message.create_time * 1000)),
        "update_time": str(int(message.update_time * 1000)),
        "deleted": False,
        "updated": message.edits + message.patches > 0,
        "chat_id": message.chat_id,
        "sender": sender,
        "body": {"content": message.content},
    }
    for key in ("root_id", "parent_id", "thread_id"):
        value = getattr(message, key)
        if value:
            item[key] = value
    mentions = []
    for m in message.mentions:
        if m.app_id is not None:
            mention_id = sandbox.apps[m.app_id].bot_open_id
        elif m.user_id is not None:
            mention_id = sandbox.users[m.user_id].open_id(app.app_id)
        else:
            mention_id = "all"
        mentions.append(
            {
                "key": m.key,
                "id": mention_id,
                "id_type": "open_id",
                "name": m.name,
                "tenant_key": app.tenant_key,
            }
        )
    if mentions:
        item["mentions"] = mentions
    return item


def _container(
    sandbox: Sandbox, app: App, id_type: str, container_id: str
) -> tuple[Chat, list[Message]] | Response:
    if id_type == "chat":
        chat = sandbox.chats.get(container_id)
        if chat is None:
            return fail(INVALID_PARAM, f"invalid container_id: chat {container_id} not found")
        messages = [sandbox.messages[i] for i in sandbox.chat_messages.get(chat.chat_id, [])]
        # Replies inside a thread show in the thread's container only; its root shows here.
        messages = [
            m
            for m in messages
            if m.thread_id is None or sandbox.threads.get(m.thread_id) == m.message_id
        ]
        return chat, messages
    root_id = sandbox.threads.get(container_id)
    root = sandbox.messages.get(root_id) if root_id else None
    chat = sandbox.chats.get(root.chat_id) if root is not None else None
    if chat is None:
        return fail(INVALID_PARAM, f"invalid container_id: thread {container_id} not found")
    return chat, threads.in_thread(sandbox, container_id)


async def list_messages(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, "im.message.list")
    if isinstance(app, Response):
        return app
    if not app.has_scope(*READ_SCOPES):
        return access_denied(READ_SCOPES)
    q = request.query_params
    id_type = q.get("container_id_type", "")
    container_id = q.get("container_id", "")
    if id_type not in ("chat", "thread"):
        return fail(
            FIELD_VALIDATION, "field validation failed: container_id_type must be chat or thread"
        )
    if not container_id:
        return fail(FIELD_VALIDATION, "field validation failed: container_id is required")
    sort_type = q.get("sort_type") or "ByCreateTimeAsc"
    if sort_type not in ("ByCreateTimeAsc", "ByCreateTimeDesc"):
        return fail(FIELD_VALIDATION, "field validation failed: sort_type is invalid")
    raw_size = q.get("page_size") or str(PAGE_SIZE_DEFAULT)
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= PAGE_SIZE_MAX:
        return fail(
            FIELD_VALIDATION, f"field validation failed: page_size must be 1..{PAGE_SIZE_MAX}"
        )
    page_size = int(raw_size)
    start = _seconds(q.get("start_time"), "start_time")
    end = _seconds(q.get("end_time"), "end_time")
    if isinstance(start, Response):
        return start
    if isinstance(end, Response):
        return end
    offset = 0
    if q.get("page_token"):
        found = _offset(q["page_token"])
        if found is None:
            return fail(INVALID_PARAM, "invalid page_token")
        offset = found
    if sandbox.settings.history_delay_s > 0:
        await asyncio.sleep(sandbox.settings.history_delay_s)
    container = _container(sandbox, app, id_type, container_id)
    if isinstance(container, Response):
        return container
    chat, messages = container
    if app.app_id not in chat.app_ids:
        return fail(BOT_NOT_IN_CHAT, "Bot is not in the chat.")
    if chat.chat_type == "group" and not app.has_scope(*GROUP_SCOPES):
        return access_denied(GROUP_SCOPES)
    joined = chat.joined_at.get(app.app_id, chat.created_at)
    if not chat.history_before_join:
        messages = [m for m in messages if m.create_time >= joined]
    if id_type == "chat":  # the thread container takes no time range
        if start is not None:
            messages = [m for m in messages if m.create_time >= start]
        if end is not None:
            messages = [m for m in messages if m.create_time <= end]
    if sort_type == "ByCreateTimeDesc":
        messages = list(reversed(messages))
    page = messages[offset : offset + page_size]
    has_more = offset + page_size < len(messages)
    with_name = q.get("with_sender_name", "").lower() in ("true", "1")
    data: dict[str, Any] = {
        "has_more": has_more,
        "items": [history_item(sandbox, app, m, with_name) for m in page],
    }
    if has_more:
        data["page_token"] = _token(offset + page_size)
    return ok(data)


routes = [Route("/open-apis/im/v1/messages", list_messages, methods=["GET"])]
