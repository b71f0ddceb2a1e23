"""Database engine and migrations. SQLite (WAL) embedded; any SQLAlchemy URL at scale."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'tokenmill.db'}"


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL: commits don't fsync (they would queue behind and in front of the usage journal's
    # fsyncs on the same disk). Durability comes from `make_durable` before journal segments go.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def make_durable(engine: Engine) -> bool:
    """Make every committed transaction survive power loss; True when that is so.

    In SQLite WAL mode with synchronous=NORMAL a checkpoint syncs the WAL and the database, so
    everything committed before a complete checkpoint is durable. Other databases are durable
    at commit.
    """
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as conn:
        busy, log_frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return bool(busy == 0 and log_frames == done)
