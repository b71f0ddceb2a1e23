"""Alembic environment: runs on the connection handed in by `tokenmill.store.db.migrate`."""

from alembic import context
from sqlalchemy import Connection, create_engine

from tokenmill.store.tables import Base

config = context.config
connection: Connection | None = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic` CLI use: URL from the ini file
    with create_engine(config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        _run(conn)
