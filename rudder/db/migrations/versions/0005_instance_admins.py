"""instance admins, and who approved a runtime that runs on the server

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_instance_admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Existing agents start unapproved: in authenticated mode an instance admin saves a
    # server-executing runtime again before it runs (docs/security.md).
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runtime_approved_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("runtime_approved_by")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_instance_admin")
