"""instance admins, and who approved a runtime that runs on the server

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.migrate import drop_columns

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN, never a batch "move and copy": on SQLite that drops the old
    # table, and with foreign keys on the drop deletes every membership of every user.
    op.add_column(
        "users",
        sa.Column("is_instance_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Existing agents start unapproved: in authenticated mode an instance admin saves a
    # server-executing runtime again before it runs (docs/security.md).
    op.add_column("agents", sa.Column("runtime_approved_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    # In place, never by copying the table (see drop_columns): agents and users are referenced
    # by most other tables.
    drop_columns("agents", "runtime_approved_by")
    drop_columns("users", "is_instance_admin")
