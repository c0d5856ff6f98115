"""Inbound Feishu events, validated at the edge and turned into one neutral `InboundEvent`.

Both transports (long connection and webhook) carry the same plaintext schema 2.0 envelope
(reference §4.1), so this is the only place that knows its shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class UserId(_Loose):
    open_id: str | None = None
    union_id: str | None = None
    user_id: str | None = None


class Sender(_Loose):
    sender_id: UserId | None = None
    sender_type: str = "user"


class Mention(_Loose):
    key: str = ""
    id: UserId | None = None
    name: str = ""


class MessageBody(_Loose):
    message_id: str
    chat_id: str
    chat_type: str = "p2p"
    message_type: str = "text"
    content: str = "{}"
    mentions: list[Mention] | None = None
    parent_id: str | None = None
    root_id: str | None = None
    thread_id: str | None = None
    create_time: str | None = None


class MessageEvent(_Loose):
    sender: Sender
    message: MessageBody


class Header(_Loose):
    event_id: str
    event_type: str
    app_id: str = ""
    create_time: str | None = None
    token: str | None = None
    tenant_key: str | None = None


class Envelope(_Loose):
    schema_: str | None = None
    header: Header
    event: dict[str, Any] = {}


class EventError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class InboundMessage:
    message_id: str
    chat_id: str
    chat_type: str  # p2p | group
    message_type: str
    text: str | None  # plain text with mention placeholders stripped; None when not text
    raw_text: str | None
    mentions: list[Mention]
    mention_all: bool
    sender_open_id: str | None
    sender_union_id: str | None
    sender_type: str
    sender_name: str | None = None


@dataclass(frozen=True, slots=True)
class InboundEvent:
    event_id: str
    event_type: str
    app_id: str
    token: str | None
    payload: dict[str, Any]
    message: InboundMessage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")


def _text_of(message_type: str, content: str) -> str | None:
    try:
        data = json.loads(content) if content else {}
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if message_type == "text":
        text = data.get("text")
        return text if isinstance(text, str) else None
    return None


def strip_mentions(text: str) -> str:
    return re.sub(r"\s+", " ", _PLACEHOLDER.sub(" ", text)).strip()


def parse_event(payload: bytes | dict[str, Any]) -> InboundEvent:
    """Validate an envelope; raises EventError naming what is wrong."""
    try:
        data = json.loads(payload) if isinstance(payload, bytes | bytearray) else payload
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"event is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventError("event is not a JSON object")
    try:
        env = Envelope.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise EventError(f"event envelope: {where}: {first.get('msg')}") from None
    message = None
    if env.header.event_type == "im.message.receive_v1":
        try:
            body = MessageEvent.model_validate(env.event)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise EventError(f"im.message.receive_v1 event: {where}: {first.get('msg')}") from None
        raw = _text_of(body.message.message_type, body.message.content)
        mentions = body.message.mentions or []
        sender_id = body.sender.sender_id or UserId()
        message = InboundMessage(
            message_id=body.message.message_id,
            chat_id=body.message.chat_id,
            chat_type=body.message.chat_type,
            message_type=body.message.message_type,
            text=strip_mentions(raw) if raw is not None else None,
            raw_text=raw,
            mentions=mentions,
            mention_all="@_all" in (raw or "") or any(m.key == "@_all" for m in mentions),
            sender_open_id=sender_id.open_id,
            sender_union_id=sender_id.union_id,
            sender_type=body.sender.sender_type,
        )
    return InboundEvent(
        event_id=env.header.event_id,
        event_type=env.header.event_type,
        app_id=env.header.app_id,
        token=env.header.token,
        payload=data,
        message=message,
    )
