"""Rating: each usage record's tokens, by class, at the price rule in effect when it was used,
as exact charges. Idempotent: a record is rated once (its charges are keyed by request id and
class), however often rating runs or records arrive, late or twice."""

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.store.tables import UsageCharge, UsageRow

BATCH = 5000


def charges_of(row: UsageRow, book: PriceBook) -> list[dict[str, object]]:
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


def rate_pending(engine: Engine, book: PriceBook) -> int:
    """Rate every usage record not rated yet. Returns how many records were rated."""
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
                .order_by(UsageRow.created_at)
                .limit(BATCH)
            )
            rows = list(s.scalars(unrated))
        charges = [c for row in rows for c in charges_of(row, book)]
        if charges:
            dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
            with engine.begin() as conn:
                conn.execute(dialect.insert(UsageCharge).on_conflict_do_nothing(), charges)
        rated += len(rows)
        if len(rows) < BATCH:
            return rated
