"""runs interrupted by a crash are run again once: agents.rerun_interrupted, runs.attempt

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.migrate import drop_columns

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN, never a batch "move and copy" of a referenced table.
    op.add_column(
        "agents",
        sa.Column("rerun_interrupted", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("runs", sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    drop_columns("runs", "attempt")
    drop_columns("agents", "rerun_interrupted")
