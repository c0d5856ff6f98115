"""topics as conversations: conversations/chat_bindings.external_thread_id; outbox by message

Revision ID: 0009_cards
Revises: 0008_media
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.migrate import drop_columns

revision: str = "0009_cards"
down_revision: str | None = "0008_media"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN, never a batch "move and copy" of a referenced table.
    op.add_column("conversations", sa.Column("external_thread_id", sa.String(100), nullable=True))
    op.add_column("chat_bindings", sa.Column("external_thread_id", sa.String(100), nullable=True))
    # "Is this a reply to the bot's own message?" looks the parent up among what the bot sent.
    op.create_index("ix_outbox_feishu_message", "outbox", ["feishu_message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_feishu_message", table_name="outbox")
    drop_columns("chat_bindings", "external_thread_id")
    drop_columns("conversations", "external_thread_id")
