"""Rating: each usage record's tokens, by class, at the price rule in effect when it was used,
as exact charges. Idempotent: a record is rated once (its charges are keyed by request id and
class), however often rating runs or records arrive, late or twice.

Each charge inserted is added to the revenue rollup in the same transaction (`revenue_rollup`).
Records are rated as the ledger takes them (`rate_records`, called by the ledger writer); a
sweep (`rate_pending`) catches whatever that missed: all of it at start, the recent days after."""

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.billing.revenue_rollup import add_revenue
from tokenmill.store.tables import UsageCharge, UsageRow
from tokenmill.store.upserts import insert_new

BATCH = 5000


class Rateable(Protocol):
    """What rating reads of a usage record: a ledger row and a UsageRecord both have it."""

    @property
    def request_id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def agent(self) -> str | None: ...
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


def rate_records(engine: Engine, book: PriceBook, records: Sequence[Rateable]) -> None:
    """Insert the charges of `records` not stored yet and add those to the revenue rollup, in one
    transaction."""
    charges = [c for r in records for c in charges_of(r, book)]
    if not charges:
        return
    who: dict[str, Rateable] = {}
    for r in records:
        who.setdefault(r.request_id, r)  # the first, as the ledger kept it
    with engine.begin() as conn:
        new = insert_new(conn, UsageCharge, charges, ("request_id", "token_class"))
        add_revenue(conn, new, who)


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
        rate_records(engine, book, rows)
        rated += len(rows)
        if len(rows) < BATCH:
            return rated
