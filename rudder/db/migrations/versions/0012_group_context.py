"""group context: agents.group_context, the context fields of a chat policy,
feishu_group_contexts (the messages fetched for one Feishu message, kept for its run), and an
index of a bot's events by chat (when it joined a chat)

Revision ID: 0012_group_context
Revises: 0014_one_post_per_message
Create Date: 2026-12-01 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.base import UTCDateTime
from rudder.db.migrate import drop_columns

revision: str = "0012_group_context"
down_revision: str | None = "0014_one_post_per_message"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN, never a batch copy of a referenced table.
    op.add_column(
        "agents",
        sa.Column("group_context", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    table = "feishu_chat_policies"
    op.add_column(
        table, sa.Column("context", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    for name, default in (
        ("context_messages", "20"),
        ("context_hours", "24"),
        ("context_chars", "8000"),
    ):
        op.add_column(table, sa.Column(name, sa.Integer(), server_default=default, nullable=False))
    op.create_table(
        "feishu_group_contexts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "integration_id",
            sa.String(32),
            sa.ForeignKey(
                "integrations.id",
                ondelete="CASCADE",
                name="fk_feishu_group_contexts_integration_id_integrations",
            ),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feishu_group_contexts"),
        sa.UniqueConstraint(
            "integration_id",
            "message_id",
            name="uq_feishu_group_contexts_integration_id_message_id",
        ),
    )
    op.create_index(
        "ix_feishu_group_contexts_integration_id", "feishu_group_contexts", ["integration_id"]
    )

    op.create_index(
        "ix_inbound_events_integration_chat",
        "inbound_events",
        ["integration_id", "chat_id", "received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_events_integration_chat", "inbound_events")
    op.drop_index("ix_feishu_group_contexts_integration_id", "feishu_group_contexts")
    op.drop_table("feishu_group_contexts")
    drop_columns(
        "feishu_chat_policies", "context", "context_messages", "context_hours", "context_chars"
    )
    drop_columns("agents", "group_context")
