"""Alembic environment: always given a connection by rudder.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from rudder.db.models import Base

target_metadata = Base.metadata


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    # Used by developers running `alembic revision --autogenerate` with -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///autogen.db")
    with create_engine(url).connect() as conn:
        _configure_and_run(conn)
        conn.commit()
