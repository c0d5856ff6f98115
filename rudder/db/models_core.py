"""Organizations, people, agents, secrets and the activity log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class Organization(Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # Monthly budget of the whole organization (calendar month, UTC); 0 = no budget.
    budget_monthly_cents: Mapped[int] = mapped_column(Integer, default=0)
    budget_warn_percent: Mapped[int] = mapped_column(Integer, default=80)
    budget_hard_stop: Mapped[bool] = mapped_column(default=True)


class User(Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    # Runs the deployment with the operator: may choose runtimes that execute on this server
    # and create organizations (docs/security.md). Granted only by `rudder user grant-admin`.
    is_instance_admin: Mapped[bool] = mapped_column(default=False, server_default=false())


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="member")  # owner | admin | member
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | disabled


class ApiToken(Base):
    """A token for scripts and runtimes; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(100), default="general")
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    capabilities: Mapped[str | None] = mapped_column(Text, default=None)
    # active | paused | terminated (rudder.domain.agent_status holds the transitions)
    status: Mapped[str] = mapped_column(String(20), default="active")
    pause_reason: Mapped[str | None] = mapped_column(String(20), default=None)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)
    runtime_type: Mapped[str] = mapped_column(String(50))
    runtime_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    instructions: Mapped[str | None] = mapped_column(Text, default=None)
    is_example: Mapped[bool] = mapped_column(default=False)
    # Who last chose this agent's runtime when it runs on this server: an instance admin
    # (`user:<id>`) or the operator (`cli`, `system`). None: nobody allowed to, and in
    # authenticated mode the executor refuses to start it (docs/security.md).
    runtime_approved_by: Mapped[str | None] = mapped_column(String(100), default=None)
    # Names of the organization's skills enabled for this agent.
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Monthly budget (calendar month, UTC); 0 = no budget of its own.
    budget_monthly_cents: Mapped[int] = mapped_column(Integer, default=0)
    budget_warn_percent: Mapped[int] = mapped_column(Integer, default=80)
    budget_hard_stop: Mapped[bool] = mapped_column(default=True)
    # A run cut short by a crash of Rudder is run again once (off for agents with side effects).
    rerun_interrupted: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    # May the agent be given the recent messages of a Feishu group it is addressed in (each
    # group's policy says whether and how many)? On: Connect also asks for the permission.
    group_context: Mapped[bool] = mapped_column(default=False, server_default=false())


class Secret(Base):
    """A named secret of an organization, AES-256-GCM encrypted with AAD bound to this row."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime | None] = mapped_column(default=None)


class ActivityLog(Base):
    __tablename__ = "activity_log"
    __table_args__ = (Index("ix_activity_org_created", "org_id", "created_at"),)

    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(200))  # "user:<id>", "agent:<id>", "system"
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(64), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The agent concerned, if any (an agent's own changes, its budget, skills, bindings).
    agent_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)


class AgentConfigRevision(Base):
    """One change of an agent's configuration: who, when, which keys, before and after."""

    __tablename__ = "agent_config_revisions"
    __table_args__ = (UniqueConstraint("agent_id", "rev"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    rev: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20), default="edit")  # create | edit | rollback
    changed_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    before_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
