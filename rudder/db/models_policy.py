"""Per-chat policy of a bot in Feishu groups (docs/agent-teams.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base, utcnow

# The chat_id of the row that holds a bot's default for the groups it has no row for.
EVERY_GROUP = "*"


class ChatPolicy(Base):
    """How one bot behaves in one group (or, with chat_id "*", in groups without a row)."""

    __tablename__ = "feishu_chat_policies"
    __table_args__ = (UniqueConstraint("integration_id", "chat_id"),)

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[str] = mapped_column(String(100))
    # Does the bot answer in this group at all? On the "*" row: False makes an allowlist.
    answers: Mapped[bool] = mapped_column(default=True)
    # Must a message @-mention the bot (a reply to the bot's own message counts)?
    require_mention: Mapped[bool] = mapped_column(default=True)
    # Who may address it: "members" (Feishu users bound to a member) or "tenant" (anyone of
    # the tenant in the chat; unbound people act as `default_user_id`).
    audience: Mapped[str] = mapped_column(String(20), default="members")
    default_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # No binding prompts or notices in this group: unbound senders are ignored silently.
    quiet: Mapped[bool] = mapped_column(default=False)
    # Group context (rudder.feishu.group_context): give the agent the messages that preceded
    # the one it answers, at most this many, this old and this long (the agent must opt in too).
    context: Mapped[bool] = mapped_column(default=False, server_default=false())
    context_messages: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    context_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    context_chars: Mapped[int] = mapped_column(Integer, default=8000, server_default="8000")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200), default=None)


class GroupContext(Base):
    """The recent messages of a group fetched for one Feishu message, kept for its run.

    Fetched once in routing (after the ack), read by the run wherever it executes (a worker
    process, a second attempt after a crash): the run never calls Feishu for it.
    """

    __tablename__ = "feishu_group_contexts"
    __table_args__ = (UniqueConstraint("integration_id", "message_id"),)

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(String(100))  # the Feishu message answered
    # [{"message_id", "sender", "sender_type", "sent_at", "text"}], oldest first
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
