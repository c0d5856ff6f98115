"""Per-chat policy of a bot in Feishu groups (docs/agent-teams.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
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
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200), default=None)
