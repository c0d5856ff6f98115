"""a voice message's transcript on its attachment: attachments.transcript

Revision ID: 0013_media_more
Revises: 0011_handoff
Create Date: 2026-12-01 20:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_media_more"
down_revision: str | None = "0011_handoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # add_column, never a table rebuild: messages and conversations cascade into attachments.
    op.add_column("attachments", sa.Column("transcript", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("attachments", "transcript")
