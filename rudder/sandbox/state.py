"""The sandbox's tenant model: apps, users, chats, messages, cards, registrations."""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

Brand = Literal["feishu", "lark"]
BRANDS: tuple[Brand, ...] = ("feishu", "lark")

DEFAULT_EVENT_TYPES = (
    "im.message.receive_v1",
    "im.chat.member.bot.added_v1",
    "im.chat.member.bot.deleted_v1",
)


def new_app_id() -> str:
    # Official clients refuse app ids not matching ^cli_[0-9a-f]{16}$ (node ws-client).
    return "cli_" + secrets.token_hex(8)


def new_message_id() -> str:
    return "om_" + secrets.token_hex(16)


def new_chat_id() -> str:
    return "oc_" + secrets.token_hex(16)


def new_event_id() -> str:
    return secrets.token_hex(16)


def new_user_id() -> str:
    return "u_" + secrets.token_hex(5)


def new_thread_id() -> str:
    return "omt_" + secrets.token_hex(6)


def new_uuid() -> str:
    return str(uuid.uuid4())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def now_ms(ts: float) -> str:
    """Feishu puts millisecond epochs in strings."""
    return str(int(ts * 1000))


class DeliveryMode(enum.StrEnum):
    LONG_CONNECTION = "long_connection"
    WEBHOOK = "webhook"


@dataclass(slots=True)
class App:
    app_id: str
    app_secret: str
    name: str
    brand: Brand
    tenant_key: str
    verification_token: str
    encrypt_key: str
    bot_open_id: str
    event_delivery: DeliveryMode = DeliveryMode.LONG_CONNECTION
    webhook_url: str | None = None
    event_types: list[str] = field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))
    # Feishu only pushes group messages that @mention the bot unless the app holds the
    # sensitive im:message.group_msg scope (reference §4.2).
    receive_all_group_messages: bool = False
    description: str = ""
    # The scopes granted to the app; None grants every scope (an app made through the test API
    # without a list). Reads beyond messaging (names of users and chats) check them.
    scopes: list[str] | None = None
    # Callbacks are subscribed apart from events (the console's "callback configuration").
    callback_types: list[str] = field(default_factory=lambda: ["card.action.trigger"])

    def has_scope(self, *any_of: str) -> bool:
        return self.scopes is None or any(s in self.scopes for s in any_of)

    def public(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "name": self.name,
            "brand": self.brand,
            "bot_open_id": self.bot_open_id,
            "verification_token": self.verification_token,
            "encrypt_key": self.encrypt_key,
            "tenant_key": self.tenant_key,
            "event_delivery": self.event_delivery.value,
            "webhook_url": self.webhook_url,
            "event_types": list(self.event_types),
            "receive_all_group_messages": self.receive_all_group_messages,
            "scopes": None if self.scopes is None else list(self.scopes),
            "callback_types": list(self.callback_types),
        }


@dataclass(slots=True)
class User:
    user_id: str
    name: str
    union_id: str

    def open_id(self, app_id: str) -> str:
        # A user's open_id is scoped to each app; union_id is stable across a developer's apps.
        return "ou_" + _digest("open", app_id, self.user_id)[:32]

    def public(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "union_id": self.union_id}


def make_user(name: str) -> User:
    user_id = new_user_id()
    return User(user_id=user_id, name=name, union_id="on_" + _digest("union", user_id)[:32])


def make_app(name: str, brand: Brand, tenant_key: str) -> App:
    app_id = new_app_id()
    return App(
        app_id=app_id,
        app_secret=secrets.token_urlsafe(24),
        name=name,
        brand=brand,
        tenant_key=tenant_key,
        verification_token=secrets.token_urlsafe(24),
        encrypt_key=secrets.token_urlsafe(24),
        bot_open_id="ou_" + _digest("bot", app_id)[:32],
    )


@dataclass(slots=True)
class Chat:
    chat_id: str
    chat_type: Literal["p2p", "group"]
    name: str
    user_ids: list[str]
    app_ids: list[str]
    created_at: float
    # "group" or "topic" (a topic group: every new message starts a topic); p2p chats are "p2p".
    chat_mode: Literal["p2p", "group", "topic"] = "group"
    # When each bot (last) joined: the history API never shows a bot what came before.
    joined_at: dict[str, float] = field(default_factory=dict)
    # A test switch, not a Feishu setting: the history API shows bots what came before they
    # joined too, so a test can prove a client cuts it off itself.
    history_before_join: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "type": self.chat_type,
            "chat_mode": self.chat_mode,
            "name": self.name,
            "user_ids": list(self.user_ids),
            "app_ids": list(self.app_ids),
            "history_before_join": self.history_before_join,
        }


@dataclass(slots=True)
class Mention:
    key: str
    name: str
    user_id: str | None = None  # a person
    app_id: str | None = None  # a bot


@dataclass(slots=True)
class Reaction:
    reaction_id: str
    emoji_type: str
    operator_type: Literal["app", "user"]
    operator_id: str
    action_time: float


@dataclass(slots=True)
class Message:
    message_id: str
    chat_id: str
    sender_type: Literal["user", "app"]
    sender_id: str  # sandbox user_id or app_id
    msg_type: str
    content: str  # the JSON string, as Feishu stores it
    create_time: float
    update_time: float
    parent_id: str | None = None
    root_id: str | None = None
    thread_id: str | None = None
    mentions: list[Mention] = field(default_factory=list)
    edits: int = 0  # text/post edits (PUT), capped at 20
    patches: int = 0  # card updates (PATCH)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass(slots=True)
class Card:
    card_id: str
    app_id: str
    data: dict[str, Any]
    sequence: int = 0
    op_times: list[float] = field(default_factory=list)

    @property
    def streaming(self) -> bool:
        config = self.data.get("config")
        return isinstance(config, dict) and bool(config.get("streaming_mode"))


@dataclass(slots=True)
class SlashCommand:
    command_id: str
    app_id: str
    command: str
    description: dict[str, Any]
    icon: dict[str, Any] | None
    create_time: float
    update_time: float

    def public(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "command_id": self.command_id,
            "command": self.command,
            "description": self.description,
            "create_time": now_ms(self.create_time),
            "update_time": now_ms(self.update_time),
        }
        if self.icon is not None:
            item["icon"] = self.icon
        return item


class RegistrationStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


@dataclass(slots=True)
class Registration:
    device_code: str
    user_code: str
    created_at: float
    expires_in: int
    begin_brand: Brand
    status: RegistrationStatus = RegistrationStatus.PENDING
    last_poll_at: float | None = None
    app_id: str | None = None
    user_id: str | None = None
    approved_brand: Brand | None = None
    brand_switch_served: bool = False
    page_brand: Brand | None = None  # the product whose confirm page was opened, when known
    polls: dict[str, int] = field(default_factory=dict)  # poll count per host brand ("" unknown)
    prefill: dict[str, Any] = field(default_factory=dict)

    def public(self, now: float) -> dict[str, Any]:
        return {
            "user_code": self.user_code,
            "status": self.status.value,
            "expired": self.expired(now),
            "expires_at": self.created_at + self.expires_in,
            "brand": self.approved_brand or self.page_brand or self.begin_brand,
            "begin_brand": self.begin_brand,
            "page_brand": self.page_brand,
            "polls": dict(self.polls),
            "app_id": self.app_id,
            "user_id": self.user_id,
            "prefill": self.prefill,
        }

    def expired(self, now: float) -> bool:
        return self.status is RegistrationStatus.PENDING and now > self.created_at + self.expires_in


def new_user_code() -> str:
    # Real codes look like 4LLH-3FGX; skip look-alike characters.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def wall_time() -> float:
    return time.time()
