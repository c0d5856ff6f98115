"""Budget incidents, the model price table and the skills library."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rudder.db.base import Base


class BudgetIncident(Base):
    """A budget crossed its warning threshold or its hard stop in one calendar month (UTC).

    One row per scope, month and kind: the unique constraint makes the alert fire once.
    """

    __tablename__ = "budget_incidents"
    __table_args__ = (
        UniqueConstraint("scope_type", "scope_id", "month", "kind"),
        Index("ix_budget_incidents_org_status", "org_id", "status"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    scope_type: Mapped[str] = mapped_column(String(20))  # organization | agent
    scope_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32), default=None)
    kind: Mapped[str] = mapped_column(String(20))  # warning | hard_stop
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    amount_cents: Mapped[int] = mapped_column(Integer)
    spent_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class ModelPrice(Base):
    """What a model costs per million tokens, for runtimes that report tokens but no cost."""

    __tablename__ = "model_prices"
    __table_args__ = (UniqueConstraint("org_id", "model"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    input_usd_per_mtok: Mapped[float] = mapped_column(Float)
    output_usd_per_mtok: Mapped[float] = mapped_column(Float)
    cached_input_usd_per_mtok: Mapped[float] = mapped_column(Float, default=0.0)


class Skill(Base):
    """One skill of an organization's library: a folder with a SKILL.md and optional files.

    Stored in the database rather than under RUDDER_HOME: every instance of a scaled-out
    deployment (PostgreSQL) serves runs, and each needs the same library.
    """

    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1024))
    # The whole SKILL.md (front matter and instructions).
    body: Mapped[str] = mapped_column(Text)
    # Optional files of the folder, relative path → text.
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
