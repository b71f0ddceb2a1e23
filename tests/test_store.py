"""The Alembic migrations and the ORM tables describe the same schema; SQLite runs in WAL."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import Base


def test_migrations_match_tables(tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL + checkpoints
