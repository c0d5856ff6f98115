"""agents host: profile, status, budgets, revisions, skills

Existing rows get defaults: no budget, an 80 % warning, hard stop on, no skills.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:27:58.035056
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rudder.db.base
from rudder.db.migrate import drop_columns

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN, never a batch "move and copy": on SQLite that drops the old
    # table, and with foreign keys on the drop deletes every row that references it.
    op.create_table(
        "budget_incidents",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("scope_type", sa.String(length=20), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("spent_cents", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("resolved_at", rudder.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", rudder.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_budget_incidents_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_incidents")),
        sa.UniqueConstraint(
            "scope_type",
            "scope_id",
            "month",
            "kind",
            name=op.f("uq_budget_incidents_scope_type_scope_id_month_kind"),
        ),
    )
    op.create_index(
        "ix_budget_incidents_org_status", "budget_incidents", ["org_id", "status"], unique=False
    )

    op.create_table(
        "model_prices",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_usd_per_mtok", sa.Float(), nullable=False),
        sa.Column("output_usd_per_mtok", sa.Float(), nullable=False),
        sa.Column("cached_input_usd_per_mtok", sa.Float(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", rudder.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_model_prices_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
        sa.UniqueConstraint("org_id", "model", name=op.f("uq_model_prices_org_id_model")),
    )
    op.create_table(
        "skills",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("updated_at", rudder.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", rudder.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_skills_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skills")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_skills_org_id_name")),
    )
    op.create_table(
        "agent_config_revisions",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("changed_keys", sa.JSON(), nullable=False),
        sa.Column("before_config", sa.JSON(), nullable=False),
        sa.Column("after_config", sa.JSON(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", rudder.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_config_revisions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_agent_config_revisions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_config_revisions")),
        sa.UniqueConstraint("agent_id", "rev", name=op.f("uq_agent_config_revisions_agent_id_rev")),
    )
    op.add_column("activity_log", sa.Column("agent_id", sa.String(length=32), nullable=True))
    op.create_index("ix_activity_log_agent_id", "activity_log", ["agent_id"], unique=False)

    op.add_column("agents", sa.Column("capabilities", sa.Text(), nullable=True))
    op.add_column("agents", sa.Column("pause_reason", sa.String(length=20), nullable=True))
    op.add_column(
        "agents", sa.Column("paused_at", rudder.db.base.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "agents",
        sa.Column("terminated_at", rudder.db.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("agents", sa.Column("skills", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column(
        "agents",
        sa.Column("budget_monthly_cents", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "agents",
        sa.Column("budget_warn_percent", sa.Integer(), nullable=False, server_default="80"),
    )
    op.add_column(
        "agents",
        sa.Column("budget_hard_stop", sa.Boolean(), nullable=False, server_default=sa.true()),
    )

    op.add_column(
        "organizations",
        sa.Column("budget_monthly_cents", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "organizations",
        sa.Column("budget_warn_percent", sa.Integer(), nullable=False, server_default="80"),
    )
    op.add_column(
        "organizations",
        sa.Column("budget_hard_stop", sa.Boolean(), nullable=False, server_default=sa.true()),
    )

    op.add_column("runs", sa.Column("cost_usd", sa.Float(), nullable=True))
    op.add_column("runs", sa.Column("skills", sa.JSON(), nullable=False, server_default="[]"))
    op.create_index("ix_runs_agent_finished", "runs", ["agent_id", "finished_at"], unique=False)


def downgrade() -> None:
    # In place, never by copying the table (see drop_columns): agents, organizations and runs
    # are referenced by every other table.
    op.drop_index("ix_runs_agent_finished", table_name="runs")
    drop_columns("runs", "skills", "cost_usd")
    drop_columns("organizations", "budget_hard_stop", "budget_warn_percent", "budget_monthly_cents")
    drop_columns(
        "agents",
        "budget_hard_stop",
        "budget_warn_percent",
        "budget_monthly_cents",
        "skills",
        "terminated_at",
        "paused_at",
        "pause_reason",
        "capabilities",
    )

    op.drop_index("ix_activity_log_agent_id", table_name="activity_log")
    drop_columns("activity_log", "agent_id")

    op.drop_table("agent_config_revisions")
    op.drop_table("skills")
    op.drop_table("model_prices")
    op.drop_index("ix_budget_incidents_org_status", table_name="budget_incidents")

    op.drop_table("budget_incidents")
