"""Read marks: when a member last looked at a conversation (Messenger's unread marks)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class ConversationRead(Base):
    """One row per user and conversation; kept in the database so it holds across devices."""

    __tablename__ = "conversation_reads"
    __table_args__ = (UniqueConstraint("user_id", "conversation_id"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    last_seen_at: Mapped[datetime]
