"""a Feishu message is posted once per conversation: unique (conversation_id, external_message_id)

Revision ID: 0014_one_post_per_message
Revises: 0013_media_more
Create Date: 2026-12-01 21:10:00

Two processes that route the same event at once (a takeover while the old holder was still
alive, say) each checked that the message was not posted yet, then both posted it. The database
now refuses the second post. Copies a race left behind keep their text and run; only the first
of each keeps the Feishu message id, so the index can be built.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_one_post_per_message"
down_revision: str | None = "0013_media_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("external_message_id IS NOT NULL")


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE messages SET external_message_id = NULL WHERE external_message_id IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM messages first WHERE first.conversation_id = "
            "messages.conversation_id AND first.external_message_id = messages.external_message_id "
            "AND first.seq < messages.seq)"
        )
    )
    op.drop_index("ix_messages_conversation_external", "messages")
    op.create_index(
        "uq_messages_conversation_external",
        "messages",
        ["conversation_id", "external_message_id"],
        unique=True,
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("uq_messages_conversation_external", "messages")
    op.create_index(
        "ix_messages_conversation_external", "messages", ["conversation_id", "external_message_id"]
    )
