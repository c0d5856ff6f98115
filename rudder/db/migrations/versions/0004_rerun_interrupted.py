"""runs interrupted by a crash are run again once: agents.rerun_interrupted, runs.attempt

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rerun_interrupted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("attempt")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("rerun_interrupted")
