"""binding confirmation codes; no credentials in stored inbound events

Binding links now need a confirmation code that only the sender's private message carries
(`binding_codes.confirm_hash`) and allow a few tries (`binding_codes.attempts`). Links issued
before have no confirmation code and can no longer be redeemed: they may have been posted in a
group where anyone could read them.

Inbound events used to be stored with the app's Verification Token (`header.token`). New rows are
stored without it (`rudder.feishu.events.strip_credentials`); this strips it from existing ones.
A migration rather than a start-up step: it runs once, recorded in `alembic_version`, on both
`rudder start` and `rudder db upgrade`, instead of scanning the inbox on every start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rudder.feishu.events import strip_credentials

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCRUB_BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("binding_codes") as batch:
        batch.add_column(sa.Column("confirm_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    _scrub_inbound_payloads(op.get_bind())


def _scrub_inbound_payloads(conn: sa.Connection) -> None:
    events = sa.table(
        "inbound_events", sa.column("id", sa.String()), sa.column("payload", sa.JSON())
    )
    text = sa.cast(events.c.payload, sa.Text)
    # Only rows whose JSON names a credential key are read and rewritten, in id order, in batches.
    suspect = sa.or_(text.like('%token"%'), text.like('%"encrypt%'), text.like('%secret"%'))
    rewrite = (
        sa.update(events)
        .where(events.c.id == sa.bindparam("row_id"))
        .values(payload=sa.bindparam("clean", type_=sa.JSON()))
    )
    # Where credentials sit in every Feishu envelope, stripped in SQL (fast, no rows through
    # Python); the loop below then finds what remains anywhere else (rare: card callbacks).
    if conn.dialect.name == "sqlite":
        native = "json_remove(payload, '$.header.token', '$.token', '$.encrypt')"
    else:
        native = "((payload::jsonb #- '{header,token}') - 'token' - 'encrypt')::json"
    conn.execute(
        sa.update(events).where(suspect).values(payload=sa.literal_column(native, sa.JSON()))
    )
    after = ""
    while True:
        rows = conn.execute(
            sa.select(events.c.id, events.c.payload)
            .where(events.c.id > after, suspect)
            .order_by(events.c.id)
            .limit(SCRUB_BATCH)
        ).all()
        if not rows:
            return
        changed = [
            {"row_id": row_id, "clean": clean}
            for row_id, payload in rows
            if (clean := strip_credentials(payload)) != payload
        ]
        if changed:  # one executemany per batch
            conn.execute(rewrite, changed)
        after = rows[-1][0]


def downgrade() -> None:
    # The stripped tokens are gone for good; only the columns go back.
    with op.batch_alter_table("binding_codes") as batch:
        batch.drop_column("attempts")
        batch.drop_column("confirm_hash")
