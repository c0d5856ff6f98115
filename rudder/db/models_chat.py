"""Conversations, messages, runs and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_org_last", "org_id", "last_message_at"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    title: Mapped[str] = mapped_column(String(300), default="New conversation")
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | archived
    source: Mapped[str] = mapped_column(String(20), default="local")  # local | feishu
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), default=None
    )
    region: Mapped[str | None] = mapped_column(String(20), default=None)  # feishu | lark
    external_chat_id: Mapped[str | None] = mapped_column(String(100), default=None)
    external_chat_type: Mapped[str | None] = mapped_column(String(20), default=None)
    external_chat_name: Mapped[str | None] = mapped_column(String(300), default=None)
    # The topic (thread_id `omt_…`) this conversation is bound to, inside external_chat_id.
    external_thread_id: Mapped[str | None] = mapped_column(String(100), default=None)
    bound: Mapped[bool] = mapped_column(default=False)
    forked_from_conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    forked_from_message_id: Mapped[str | None] = mapped_column(String(32), default=None)
    runtime_session_id: Mapped[str | None] = mapped_column(String(200), default=None)
    last_message_at: Mapped[datetime | None] = mapped_column(default=None)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
        # A Feishu message is posted once per conversation, whoever routes it (0014).
        Index(
            "uq_messages_conversation_external",
            "conversation_id",
            "external_message_id",
            unique=True,
            sqlite_where=text("external_message_id IS NOT NULL"),
            postgresql_where=text("external_message_id IS NOT NULL"),
        ),
        Index("ix_messages_external_message_id", "external_message_id"),
    )

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))  # user | assistant | system
    author_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    author_agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    external_sender_id: Mapped[str | None] = mapped_column(String(100), default=None)
    external_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    body: Mapped[str] = mapped_column(Text, default="")
    # completed | streaming | stopped | failed
    status: Mapped[str] = mapped_column(String(20), default="completed")
    run_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_conversation_status", "conversation_id", "status"),
        # Spend per agent and month (budgets, the Costs page).
        Index("ix_runs_agent_finished", "agent_id", "finished_at"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    trigger_message_id: Mapped[str | None] = mapped_column(String(32), default=None)
    reply_message_id: Mapped[str | None] = mapped_column(String(32), default=None)
    source: Mapped[str] = mapped_column(String(20), default="local")  # local | feishu | api
    # queued | running | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What this run cost (the runtime's own figure, or tokens × the model price table).
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    # Names of the skills the run was given.
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # 1, or 2 when run again after a crash of Rudder interrupted the first attempt.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Hand-offs in a group (rudder/feishu/handoff.py): the run whose reply handed the turn to
    # this one, the chain's first run (the one a person's message started) and how many
    # hand-offs led here. `chain_stopped_at` is set on a chain's first run by /stop or Stop:
    # no later hop of that chain starts.
    handed_from_run_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    handoff_root_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    handoff_hop: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    chain_stopped_at: Mapped[datetime | None] = mapped_column(default=None)


class RunEventRow(Base):
    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
