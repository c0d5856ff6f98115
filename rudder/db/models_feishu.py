"""The Feishu / Lark integration: one bot per agent, its setup, bindings, inbox and outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("agent_id", "provider"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20), default="feishu")
    region: Mapped[str] = mapped_column(String(20))  # feishu | lark
    # disconnected | connecting | connected | error
    status: Mapped[str] = mapped_column(String(20), default="disconnected")
    app_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    app_secret_id: Mapped[str | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    encrypt_key_secret_id: Mapped[str | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    verification_token_secret_id: Mapped[str | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    bot_open_id: Mapped[str | None] = mapped_column(String(100), default=None)
    bot_name: Mapped[str | None] = mapped_column(String(200), default=None)
    transport: Mapped[str] = mapped_column(String(30), default="long_connection")
    reply_style: Mapped[str] = mapped_column(String(30), default="streaming_card")
    slash_commands: Mapped[dict[str, Any]] = mapped_column(default=dict)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    last_event_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class SetupSession(Base):
    __tablename__ = "setup_sessions"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    region: Mapped[str] = mapped_column(String(20))
    # pending | connected | denied | expired | failed | cancelled (rudder.feishu.setup)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    device_code_ciphertext: Mapped[bytes | None] = mapped_column(default=None)
    user_code: Mapped[str | None] = mapped_column(String(50), default=None)
    verification_url: Mapped[str | None] = mapped_column(Text, default=None)
    poll_interval_s: Mapped[int] = mapped_column(Integer, default=5)
    poll_host: Mapped[str | None] = mapped_column(String(20), default=None)
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class ChatBinding(Base):
    __tablename__ = "chat_bindings"
    __table_args__ = (Index("ix_chat_bindings_chat", "integration_id", "external_chat_id"),)

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    external_chat_id: Mapped[str] = mapped_column(String(100))
    # A topic (thread) of the chat is a conversation of its own; None for the chat itself.
    external_thread_id: Mapped[str | None] = mapped_column(String(100), default=None)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(default=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class FeishuUserBinding(Base):
    __tablename__ = "feishu_user_bindings"
    __table_args__ = (UniqueConstraint("integration_id", "open_id"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    open_id: Mapped[str] = mapped_column(String(100))
    union_id: Mapped[str | None] = mapped_column(String(100), default=None)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)


class BindingCode(Base):
    __tablename__ = "binding_codes"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    open_id: Mapped[str] = mapped_column(String(100))
    union_id: Mapped[str | None] = mapped_column(String(100), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    # SHA-256 of "<link code>:<confirmation code>"; the confirmation code is only in the bot's
    # private message to the sender. NULL (a code issued before confirmation codes) never redeems.
    confirm_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Confirmations tried with this link, right or wrong; at MAX_ATTEMPTS it is void.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class InboundEvent(Base):
    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("app_id", "event_id"),
        Index("ix_inbound_events_integration_received", "integration_id", "received_at"),
        Index("ix_inbound_events_app_message", "app_id", "message_id"),
        # A bot's events in one chat by time: when it joined (group_context.py), its groups.
        Index("ix_inbound_events_integration_chat", "integration_id", "chat_id", "received_at"),
    )

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    chat_id: Mapped[str | None] = mapped_column(String(100), default=None)
    chat_type: Mapped[str | None] = mapped_column(String(20), default=None)
    sender_open_id: Mapped[str | None] = mapped_column(String(100), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]
    # received | processed | command | held | ignored | dropped | duplicate | refused | failed
    outcome: Mapped[str] = mapped_column(String(20), default="received")
    reason: Mapped[str | None] = mapped_column(Text, default=None)


class OutboxItem(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_feishu_message", "feishu_message_id"),
    )

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    kind: Mapped[str] = mapped_column(String(30))
    target: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_uuid: Mapped[str] = mapped_column(String(50), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    feishu_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class Instance(Base):
    """A running Rudder process (PostgreSQL mode heartbeats here)."""

    __tablename__ = "instances"

    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime]


class BotLease(Base):
    __tablename__ = "bot_leases"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), unique=True
    )
    owner_instance_id: Mapped[str] = mapped_column(String(32))
    fencing_token: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime]
