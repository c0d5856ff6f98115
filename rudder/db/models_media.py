"""Attachments of messages (images, files, voice, video) and the database blob store's chunks."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class Attachment(Base):
    """One resource of a message: what a Feishu user sent (`in`) or what an agent made (`out`).

    `status` is `stored` (the bytes are in the blob store under `blob_key`), `refused` (too large,
    not allowed, outside the run's directory) or `failed` (could not be fetched); `reason` says
    why in words a person can read. `expired` once the retention period removed the bytes.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_message", "message_id"),
        Index("ix_attachments_conversation", "conversation_id"),
        Index("ix_attachments_run", "run_id"),
        Index("ix_attachments_created", "created_at"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), default=None
    )
    run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    direction: Mapped[str] = mapped_column(String(10), default="in")  # in | out
    # image | file | audio | media | sticker (the Feishu message type it came in or goes out as)
    kind: Mapped[str] = mapped_column(String(20), default="file")
    name: Mapped[str] = mapped_column(String(300), default="file")
    mime_type: Mapped[str] = mapped_column(String(120), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    blob_key: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(20), default="stored")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # The Feishu key it came with (file_key / image_key), or the one it was uploaded as.
    external_key: Mapped[str | None] = mapped_column(String(200), default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    # A voice message's text, from Feishu's speech-to-text (rudder/media/speech.py).
    transcript: Mapped[str | None] = mapped_column(Text, default=None)


class BlobChunk(Base):
    """A piece (≤ 256 KiB) of a blob kept in the database (the PostgreSQL deployment's store)."""

    __tablename__ = "media_blob_chunks"
    __table_args__ = (Index("ix_media_blob_chunks_blob", "blob_key", "seq", unique=True),)

    blob_key: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
