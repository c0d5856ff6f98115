"""Schema 2.0 event envelopes, as delivered over webhook and long connection (reference §4)."""

from __future__ import annotations

from typing import Any

from rudder.sandbox.state import App, Chat, Message, User, new_event_id, now_ms


def envelope(app: App, event_type: str, event: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": new_event_id(),
            "event_type": event_type,
            "create_time": now_ms(now),
            # header.token carries the app's Verification Token.
            "token": app.verification_token,
            "app_id": app.app_id,
            "tenant_key": app.tenant_key,
        },
        "event": event,
    }


def user_id_triple(user: User, app_id: str) -> dict[str, str]:
    return {"union_id": user.union_id, "user_id": user.user_id, "open_id": user.open_id(app_id)}


def message_receive(
    app: App,
    chat: Chat,
    message: Message,
    sender: User,
    mentions: list[dict[str, Any]],
    now: float,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message.message_id,
        "create_time": now_ms(message.create_time),
        "update_time": now_ms(message.update_time),
        "chat_id": chat.chat_id,
        "chat_type": chat.chat_type,
        "message_type": message.msg_type,
        "content": message.content,
    }
    # root_id / parent_id / thread_id are absent for a message that is not a reply.
    if message.root_id:
        body["root_id"] = message.root_id
    if message.parent_id:
        body["parent_id"] = message.parent_id
    if message.thread_id:
        body["thread_id"] = message.thread_id
    if mentions:
        body["mentions"] = mentions
    event = {
        "sender": {
            "sender_id": user_id_triple(sender, app.app_id),
            "sender_type": "user",
            "tenant_key": app.tenant_key,
        },
        "message": body,
    }
    return envelope(app, "im.message.receive_v1", event, now)


def bot_membership(
    app: App, chat: Chat, operator: User | None, added: bool, now: float
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "chat_id": chat.chat_id,
        "external": False,
        "operator_tenant_key": app.tenant_key,
        "name": chat.name,
        "i18n_names": {"zh_cn": chat.name, "en_us": chat.name},
    }
    if operator is not None:
        event["operator_id"] = user_id_triple(operator, app.app_id)
    event_type = "im.chat.member.bot.added_v1" if added else "im.chat.member.bot.deleted_v1"
    return envelope(app, event_type, event, now)
