"""hand-offs between agents' bots in a group: runs.handed_from_run_id, handoff_root_id,
handoff_hop, chain_stopped_at

Revision ID: 0011_handoff
Revises: 0010_chat_policies
Create Date: 2026-12-01 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.base import UTCDateTime
from rudder.db.migrate import drop_columns

revision: str = "0011_handoff"
down_revision: str | None = "0010_chat_policies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN: `runs` is referenced by other tables, so no batch copy.
    op.add_column("runs", sa.Column("handed_from_run_id", sa.String(32), nullable=True))
    op.add_column("runs", sa.Column("handoff_root_id", sa.String(32), nullable=True))
    op.add_column(
        "runs", sa.Column("handoff_hop", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("runs", sa.Column("chain_stopped_at", UTCDateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_handed_from_run_id", "runs", ["handed_from_run_id"])
    op.create_index("ix_runs_handoff_root_id", "runs", ["handoff_root_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_handoff_root_id", table_name="runs")
    op.drop_index("ix_runs_handed_from_run_id", table_name="runs")
    drop_columns("runs", "chain_stopped_at", "handoff_hop", "handoff_root_id", "handed_from_run_id")
