"""Rating: each usage record's tokens, by class, at the price rule in effect when it was used,
as exact charges. Idempotent: a record is rated once (its charges are keyed by request id and
class), however often rating runs or records arrive, late or twice.

Records are rated as the ledger takes them (`rate_records`, called by the ledger writer); a
sweep (`rate_pending`) catches whatever that missed: all of it at start, the recent days after."""

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.store.tables import UsageCharge, UsageRow

BATCH = 5000


class Rateable(Protocol):
    """What rating reads of a usage record: a ledger row and a UsageRecord both have it."""

    @property
    def request_id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...


def charges_of(row: Rateable, book: PriceBook) -> list[dict[str, object]]:
    counts = {
        "input": row.prompt_tokens - row.cached_tokens,
        "cached_input": row.cached_tokens,
        "output": row.completion_tokens,
    }
    out = []
    for token_class, tokens in counts.items():
        if tokens <= 0:
            continue
        rule = book.rule_for(row.model, token_class, row.tenant, row.created_at)
        out.append(
            {
                "request_id": row.request_id,
                "token_class": token_class,
                "tenant": row.tenant,
                "model": row.model,
                "created_at": row.created_at,
                "tokens": tokens,
                "rule_id": rule.id,
                "currency": rule.currency,
                "pico": tokens * rule.pico_per_token,
            }
        )
    return out


def _insert(engine: Engine, charges: list[dict[str, object]]) -> None:
    if charges:
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        with engine.begin() as conn:
            conn.execute(dialect.insert(UsageCharge).on_conflict_do_nothing(), charges)


def rate_records(engine: Engine, book: PriceBook, records: Sequence[Rateable]) -> None:
    _insert(engine, [c for r in records for c in charges_of(r, book)])


def rate_pending(engine: Engine, book: PriceBook, since: float | None = None) -> int:
    """Rate every usage record (from `since`) not rated yet. Returns how many were rated."""
    rated = 0
    while True:
        with Session(engine) as s:
            unrated = (
                select(UsageRow)
                .where(
                    ~select(UsageCharge.request_id)
                    .where(UsageCharge.request_id == UsageRow.request_id)
                    .exists()
                )
                .where(UsageRow.prompt_tokens + UsageRow.completion_tokens > 0)
                .where(UsageRow.created_at >= (since or 0.0))
                .order_by(UsageRow.created_at)
                .limit(BATCH)
            )
            rows = list(s.scalars(unrated))
        _insert(engine, [c for row in rows for c in charges_of(row, book)])
        rated += len(rows)
        if len(rows) < BATCH:
            return rated
