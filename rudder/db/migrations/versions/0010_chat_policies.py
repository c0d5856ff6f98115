"""per-chat policy of a bot in groups: feishu_chat_policies

Revision ID: 0010_chat_policies
Revises: 0009_cards
Create Date: 2026-12-01 18:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.db.base import UTCDateTime

revision: str = "0010_chat_policies"
down_revision: str | None = "0009_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feishu_chat_policies",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "integration_id",
            sa.String(32),
            sa.ForeignKey(
                "integrations.id",
                ondelete="CASCADE",
                name="fk_feishu_chat_policies_integration_id_integrations",
            ),
            nullable=False,
        ),
        sa.Column("chat_id", sa.String(100), nullable=False),
        sa.Column("answers", sa.Boolean(), nullable=False),
        sa.Column("require_mention", sa.Boolean(), nullable=False),
        sa.Column("audience", sa.String(20), nullable=False),
        sa.Column(
            "default_user_id",
            sa.String(32),
            sa.ForeignKey(
                "users.id",
                ondelete="SET NULL",
                name="fk_feishu_chat_policies_default_user_id_users",
            ),
            nullable=True,
        ),
        sa.Column("quiet", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_feishu_chat_policies"),
        sa.UniqueConstraint(
            "integration_id", "chat_id", name="uq_feishu_chat_policies_integration_id_chat_id"
        ),
    )
    op.create_index(
        "ix_feishu_chat_policies_integration_id", "feishu_chat_policies", ["integration_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_feishu_chat_policies_integration_id", "feishu_chat_policies")
    op.drop_table("feishu_chat_policies")
