"""The business view of the ledger: token revenue and tokens per day, ARPU, top models and
tenants. Revenue is rated usage (charges) at list or contract prices, before tax."""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.core.money import Money
from tokenmill.store.tables import UsageCharge, UsageRow

TOP = 10


def kpis(
    engine: Engine, book: PriceBook, since: float, until: float, top: int = TOP
) -> dict[str, Any]:
    rates = {r.id: r.pico_per_token for r in book.rules()}
    day = UsageRow.day  # the UTC day the ledger filed the usage under
    q = (
        select(
            day,
            UsageCharge.tenant,
            UsageCharge.model,
            UsageCharge.currency,
            UsageCharge.rule_id,
            func.sum(UsageCharge.tokens),
        )
        .join(UsageRow, UsageRow.request_id == UsageCharge.request_id)
        .where(UsageCharge.created_at >= since, UsageCharge.created_at < until)
        .group_by(
            day, UsageCharge.tenant, UsageCharge.model, UsageCharge.currency, UsageCharge.rule_id
        )
    )
    revenue: dict[tuple[str, str], int] = defaultdict(int)  # (day, currency) -> pico
    tokens: dict[str, int] = defaultdict(int)
    by_tenant: dict[tuple[str, str], int] = defaultdict(int)
    by_model: dict[tuple[str, str], int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    with Session(engine) as s:
        for d, tenant, model, currency, rule_id, n in s.execute(q):
            pico = int(n) * rates[rule_id]
            revenue[(d, currency)] += pico
            tokens[d] += int(n)
            totals[currency] += pico
            by_tenant[(tenant, currency)] += pico
            by_model[(model, currency)] += pico
    currencies = sorted({c for _, c in revenue})
    arpu = {}
    for currency in currencies:
        payers = [t for (t, c) in by_tenant if c == currency]
        total = sum(p for (t, c), p in by_tenant.items() if c == currency)
        arpu[currency] = str(Money(total // max(1, len(payers)), currency).rounded(6))

    def ranked(table: dict[tuple[str, str], int], name: str) -> list[dict[str, Any]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{name: k, "currency": c, "revenue": Money(p, c).text(6)} for (k, c), p in best]

    return {
        "since": datetime.fromtimestamp(since, UTC).isoformat(),
        "until": datetime.fromtimestamp(until, UTC).isoformat(),
        "days": [
            {"day": d, "currency": c, "revenue": Money(p, c).text(6), "tokens": tokens[d]}
            for (d, c), p in sorted(revenue.items())
        ],
        "arpu": arpu,
        "top_tenants": ranked(by_tenant, "tenant"),
        "top_models": ranked(by_model, "model"),
        "revenue_total": {c: Money(p, c).text(6) for c, p in sorted(totals.items())},
    }
