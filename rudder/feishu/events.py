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

from rudder.media.keys import MEDIA_MESSAGE_TYPES, ResourceRef, resources_of


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


# Credentials an envelope may carry: `header.token` is the app's Verification Token (for a
# webhook bot without an Encrypt Key the only thing authenticating its events), `token` at the top
# of a v1 or url_verification body likewise, `encrypt` an envelope that was never decrypted, and
# card callbacks carry an update token in `event.token`. None is needed once the event is
# verified, and none may be stored.
CREDENTIAL_KEYS = frozenset(
    {
        "token",
        "encrypt",
        "verification_token",
        "encrypt_key",
        "app_secret",
        "app_access_token",
        "tenant_access_token",
        "user_access_token",
        "access_token",
        "refresh_token",
    }
)


def strip_credentials(value: Any) -> Any:
    """`value` without any CREDENTIAL_KEYS entry, at any depth (a copy; the input is untouched)."""
    if isinstance(value, dict):
        return {k: strip_credentials(v) for k, v in value.items() if k not in CREDENTIAL_KEYS}
    if isinstance(value, list):
        return [strip_credentials(v) for v in value]
    return value


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
    # Open ids @-mentioned in the body; for a post this includes `at` elements that carry an
    # open_id directly instead of a `@_user_N` placeholder (some clients send those).
    mentioned_open_ids: tuple[str, ...] = ()
    # Where the message sits (threads.py in the sandbox): a topic's messages carry `thread_id`;
    # a quoted reply in a normal group only `parent_id`/`root_id`.
    parent_id: str | None = None
    root_id: str | None = None
    thread_id: str | None = None
    # Images, files, voice, video, stickers the message carries (a post's pictures too).
    resources: tuple[ResourceRef, ...] = ()


@dataclass(frozen=True, slots=True)
class InboundEvent:
    event_id: str
    event_type: str
    app_id: str
    token: str | None
    payload: dict[str, Any]
    message: InboundMessage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# A placeholder with the blanks around it, so stripping keeps the message's other whitespace
# (line breaks and indentation matter in code and lists).
_PLACEHOLDER = re.compile(r"[ \t]*(?:@_user_\d+|@_all)[ \t]*")
# Post elements that are text to a reader; pictures and videos are its attachments (media/keys.py)
# and add no text. Anything else makes the post unreadable as text (the non-text notice).
_POST_TEXT_TAGS = frozenset({"text", "a", "at", "emotion", "code_block", "md", "hr"})
_POST_MEDIA_TAGS = frozenset({"img", "media"})


@dataclass(frozen=True, slots=True)
class _Body:
    text: str | None
    mentioned_open_ids: tuple[str, ...] = ()
    mention_all: bool = False


def _post_root(data: dict[str, Any]) -> dict[str, Any] | None:
    # Received posts are flat `{title, content}`; some clients wrap them in a locale
    # (`{"zh_cn": {...}}`) or in `{"post": {locale: {...}}}` as on the send side (reference §4.3).
    if isinstance(data.get("content"), list):
        return data
    wrapped = data.get("post")
    inner: dict[str, Any] = wrapped if isinstance(wrapped, dict) else data
    for value in inner.values():
        if isinstance(value, dict) and isinstance(value.get("content"), list):
            return value
    return None


def _post_element(el: dict[str, Any], keys: dict[str, str], found: list[str]) -> str | None:
    """The element's plain text; None when the post is not plain text after all."""
    tag = el.get("tag")
    if tag in _POST_MEDIA_TAGS:
        return ""
    if tag not in _POST_TEXT_TAGS:
        return None
    if tag == "at":
        who = str(el.get("user_id") or "")
        if who in ("all", "@_all"):
            return "@_all"
        if who in keys:  # a `@_user_N` placeholder, resolved through mentions[]
            found.append(keys[who])
            return who
        if who.startswith("ou_"):  # an open_id in place of the placeholder
            found.append(who)
            return ""
        if who.startswith("@_user_"):
            return who  # stripped below like in text messages
        name = el.get("user_name")
        return f"@{name}" if isinstance(name, str) and name else ""
    if tag == "a":
        text, href = str(el.get("text") or ""), str(el.get("href") or "")
        # Feishu writes links in text messages as `[text](url)` (reference §4.3); do the same.
        return f"[{text}]({href})" if text and href and text != href else (href or text)
    if tag == "emotion":
        return f":{el.get('emoji_type', '')}:"
    if tag == "hr":
        return "\n---\n"
    if tag == "code_block":
        return f"\n```{el.get('language') or ''}\n{el.get('text', '')}\n```\n"
    return str(el.get("text") or "")


def _text_of_post(data: dict[str, Any], keys: dict[str, str]) -> _Body:
    post = _post_root(data)
    if post is None:
        return _Body(None)
    found: list[str] = []
    lines: list[str] = []
    title = post.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(title.strip())
    for paragraph in post["content"]:
        if not isinstance(paragraph, list):
            return _Body(None)
        parts = []
        for el in paragraph:
            piece = _post_element(el, keys, found) if isinstance(el, dict) else None
            if piece is None:
                return _Body(None)
            parts.append(piece)
        lines.append("".join(parts))
    text = "\n".join(lines).strip()
    return _Body(text, tuple(found), "@_all" in text)


def _text_of(message_type: str, content: str, mentions: list[Mention]) -> _Body:
    try:
        data = json.loads(content) if content else {}
    except (json.JSONDecodeError, RecursionError):  # absurdly nested content is not text
        return _Body(None)
    if not isinstance(data, dict):
        return _Body(None)
    if message_type == "text":
        text = data.get("text")
        return _Body(text if isinstance(text, str) else None)
    if message_type == "post":
        keys = {m.key: m.id.open_id for m in mentions if m.key and m.id and m.id.open_id}
        return _text_of_post(data, keys)
    return _Body(None)


def _resources(message_type: str, content: str) -> tuple[ResourceRef, ...]:
    if message_type not in MEDIA_MESSAGE_TYPES and message_type != "post":
        return ()
    try:
        data = json.loads(content) if content else {}
    except (json.JSONDecodeError, RecursionError):
        return ()
    return resources_of(message_type, data) if isinstance(data, dict) else ()


def strip_mentions(text: str) -> str:
    def gap(m: re.Match[str]) -> str:
        # A space only between two words; at the edge of a line the placeholder just goes.
        edge = (
            m.start() == 0 or m.end() == len(text) or "\n" in (text[m.start() - 1], text[m.end()])
        )
        return "" if edge else " "

    return _PLACEHOLDER.sub(gap, text).strip()


def parse_event(payload: bytes | dict[str, Any]) -> InboundEvent:
    """Validate an envelope; raises EventError naming what is wrong."""
    try:
        data = json.loads(payload) if isinstance(payload, bytes | bytearray) else payload
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"event is not JSON: {exc}") from None
    except RecursionError:
        raise EventError("event JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise EventError("event is not a JSON object")
    try:
        env = Envelope.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise EventError(f"event envelope: {where}: {first.get('msg')}") from None
    try:
        # What `inbound_events.payload` keeps: both transports record this, never the token.
        stored = strip_credentials(data)
    except RecursionError:
        raise EventError("event JSON is nested too deeply") from None
    message = None
    if env.header.event_type == "im.message.receive_v1":
        try:
            body = MessageEvent.model_validate(env.event)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise EventError(f"im.message.receive_v1 event: {where}: {first.get('msg')}") from None
        mentions = body.message.mentions or []
        parsed = _text_of(body.message.message_type, body.message.content, mentions)
        raw = parsed.text
        resources = _resources(body.message.message_type, body.message.content)
        sender_id = body.sender.sender_id or UserId()
        message = InboundMessage(
            message_id=body.message.message_id,
            chat_id=body.message.chat_id,
            chat_type=body.message.chat_type,
            message_type=body.message.message_type,
            text=strip_mentions(raw) if raw is not None else None,
            raw_text=raw,
            mentions=mentions,
            mention_all=parsed.mention_all
            or "@_all" in (raw or "")
            or any(m.key == "@_all" for m in mentions),
            sender_open_id=sender_id.open_id,
            sender_union_id=sender_id.union_id,
            sender_type=body.sender.sender_type,
            mentioned_open_ids=parsed.mentioned_open_ids,
            parent_id=body.message.parent_id or None,
            root_id=body.message.root_id or None,
            thread_id=body.message.thread_id or None,
            resources=resources,
        )
    return InboundEvent(
        event_id=env.header.event_id,
        event_type=env.header.event_type,
        app_id=env.header.app_id,
        token=env.header.token,
        payload=stored,
        message=message,
    )


MEMBERSHIP_EVENTS = frozenset({"im.chat.member.bot.added_v1", "im.chat.member.bot.deleted_v1"})


def membership_chat(event: InboundEvent) -> str | None:
    """The chat a bot was added to or removed from (kept on the inbox row, so the bot's join
    time in a chat is one indexed lookup: group_context.py)."""
    if event.event_type not in MEMBERSHIP_EVENTS:
        return None
    body = event.payload.get("event")
    chat_id = body.get("chat_id") if isinstance(body, dict) else None
    return chat_id if isinstance(chat_id, str) and chat_id else None


def content_text(message_type: str, content: str) -> str | None:
    """A text or post message's text, its `@_user_N` placeholders kept (the message history
    API returns messages in this same content form)."""
    return _text_of(message_type, content, []).text
