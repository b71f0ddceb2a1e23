"""The two writes the rollups rest on, portable between SQLite and PostgreSQL: an insert that
skips keys already stored and says exactly which rows went in, and an upsert that adds sums.

Knowing which rows went in is what lets a rollup count each ledger row once however often a
record is replayed. PostgreSQL says it (RETURNING); SQLite's executemany cannot, so there the
keys already stored are read first and the insert's row count must match, or the transaction
is rolled back (another writer got in between) for the caller to retry.
"""

import functools
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from tokenmill.store.tables import Base

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
Row = dict[str, Any]
_CHUNK = 500  # keys per IN list: well under any database's bound-parameter limit


class Raced(RuntimeError):
    """Rows this transaction meant to add were added by another meanwhile: roll back, retry."""


def table_of(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def held_keys(
    conn: Connection, model: type[Base], key: Sequence[str], keys: Collection[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    """Which of `keys` (values of the columns named in `key`, in order) the table holds."""
    columns = [table_of(model).c[k] for k in key]
    firsts = sorted({k[0] for k in keys})
    held: set[tuple[Any, ...]] = set()
    for i in range(0, len(firsts), _CHUNK):
        q = select(*columns).where(columns[0].in_(firsts[i : i + _CHUNK]))
        held.update(tuple(row) for row in conn.execute(q))
    return held & set(keys)


def firsts(items: Iterable[T], key_of: Callable[[T], K], keep: Callable[[K], bool]) -> list[T]:
    """The first item of each key that `keep` accepts: what an insert ignoring duplicates adds."""
    seen: set[K] = set()
    out = []
    for item in items:
        key = key_of(item)
        if key not in seen:
            seen.add(key)
            if keep(key):
                out.append(item)
    return out


def expect_inserted(rowcount: int, expected: int, table: str) -> None:
    if rowcount != expected:
        raise Raced(f"{table}: {expected} new rows expected, {rowcount} inserted")


def insert_new(
    conn: Connection, model: type[Base], rows: Sequence[Row], key: Sequence[str]
) -> list[Row]:
    """Insert the rows whose key the table does not hold (the first of a key given twice) and
    return exactly those."""
    table = table_of(model)

    def key_of(row: Row) -> tuple[Any, ...]:
        return tuple(row[k] for k in key)

    if conn.dialect.name == "sqlite":
        held = held_keys(conn, model, key, {key_of(r) for r in rows})
        new = firsts(rows, key_of, lambda k: k not in held)
        if new:
            result = conn.execute(sqlite.insert(table).on_conflict_do_nothing(), new)
            expect_inserted(result.rowcount, len(new), table.name)
        return new
    returning = [table.c[k] for k in key]
    stmt = postgresql.insert(table).on_conflict_do_nothing().returning(*returning)
    added = {tuple(r) for r in conn.execute(stmt, list(rows))}
    return firsts(rows, key_of, added.__contains__)


def add_sums(conn: Connection, model: type[Base], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert each row (a tuple in the table's column order, its primary key first), or add its
    numbers to the row already under its key. Rows go in key order, so concurrent writers take
    row locks in one order (no deadlocks on PostgreSQL)."""
    if not rows:
        return
    table = table_of(model)
    ordered = sorted(rows)  # keys are unique in a batch: the order of their keys
    if conn.dialect.name != "sqlite":
        names = [c.name for c in table.columns]
        params = [dict(zip(names, r, strict=True)) for r in ordered]
        conn.execute(_adding(table, postgresql.insert(table)), params)
        return
    # SQLite: compiled once, run as a plain executemany of the tuples: Core's per-row processing
    # would cost more than the upserts (as for the ledger's own insert).
    conn.exec_driver_sql(_sqlite_adding(table, conn.dialect), ordered)


def _adding(table: Table, insert: Any) -> Any:
    key = [c.name for c in table.primary_key]
    sums = [c.name for c in table.columns if c.name not in key]
    return insert.on_conflict_do_update(
        index_elements=key, set_={s: table.c[s] + insert.excluded[s] for s in sums}
    )


@functools.cache
def _sqlite_adding(table: Table, dialect: Dialect) -> str:
    compiled = _adding(table, sqlite.insert(table)).compile(dialect=dialect)
    if list(compiled.positiontup or ()) != [c.name for c in table.columns]:
        raise RuntimeError(f"{table.name}: the upsert's parameters are not in column order")
    return str(compiled.string)
