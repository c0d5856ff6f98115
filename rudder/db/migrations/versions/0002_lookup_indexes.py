"""Indexes for the inbox's duplicate check by message and for finding a posted Feishu message.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every inbox commit looks up already-recorded (app_id, message_id) pairs; without this
    # index that is a scan of the whole table, growing with it.
    op.create_index("ix_inbound_events_app_message", "inbound_events", ["app_id", "message_id"])
    # "Was this Feishu message already posted in this conversation?" (routing, recovery).
    op.create_index(
        "ix_messages_conversation_external", "messages", ["conversation_id", "external_message_id"]
    )
    op.create_index("ix_messages_external_message_id", "messages", ["external_message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_external_message_id", "messages")
    op.drop_index("ix_messages_conversation_external", "messages")
    op.drop_index("ix_inbound_events_app_message", "inbound_events")
