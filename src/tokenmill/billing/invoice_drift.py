"""Do issued invoices agree with the charges they billed and the ledger? In tokens and money.

Tokens: the invoice's lines, the charges billed to it, and the ledger records those came
from. Money, exactly, in pico-units: the lines re-priced from their price rules, the charges
billed (their tokens at their rules' rates; a charge whose stored amount is not that is
counted as mispriced), and the invoice's own arithmetic (subtotal, tax and total recomputed
from its lines as `invoices.py` computes them). Drift is reported, never corrected.
"""

from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from tokenmill.billing.invoices import discount_off, totals
from tokenmill.core.money import Money
from tokenmill.store.tables import Invoice, PriceRule, UsageCharge, UsageRow


def _lines_pico(
    lines: list[dict[str, Any]], rates: dict[str, int], currency: str
) -> tuple[int, int, bool]:
    """The lines re-priced: usage and adjustments (what the charges must sum to), the same
    with the discount recomputed from its percent (what the subtotal rounds), and whether
    every line shows its re-priced amount."""
    usage = adjustments = 0
    consistent = True
    for line in lines:
        if line["kind"] == "discount":
            continue
        pico = int(line["tokens"]) * rates.get(str(line["price_rule"]), -1)
        shown = line["amount"] == Money(pico, currency).text(6)
        consistent &= line["price_rule"] in rates and shown
        if line["kind"] == "usage":
            usage += pico
        else:
            adjustments += pico
    off = 0
    for line in (x for x in lines if x["kind"] == "discount"):
        try:
            percent = Decimal(str(line["unit_price"]).removesuffix("%"))
        except InvalidOperation:
            return usage + adjustments, usage + adjustments, False
        line_off = discount_off(usage, percent)
        consistent &= line["amount"] == Money(line_off, currency).text(6)
        off += line_off
    return usage + adjustments, usage + adjustments + off, consistent


def invoice_drift(engine: Engine) -> list[dict[str, Any]]:
    out = []
    with Session(engine) as s:
        rates = dict(s.execute(select(PriceRule.id, PriceRule.pico_per_token)).all())
        charged: dict[str, int] = defaultdict(int)  # pico, at the rules' rates
        tokens: dict[str, int] = defaultdict(int)
        mispriced: dict[str, int] = defaultdict(int)
        rate = PriceRule.pico_per_token
        q = (
            select(
                UsageCharge.invoice_id,
                UsageCharge.rule_id,
                func.sum(UsageCharge.tokens),
                func.sum(case((UsageCharge.pico != UsageCharge.tokens * rate, 1), else_=0)),
            )
            .join(PriceRule, PriceRule.id == UsageCharge.rule_id)
            .where(UsageCharge.invoice_id.is_not(None))
            .group_by(UsageCharge.invoice_id, UsageCharge.rule_id)
        )  # sums of tokens, never of pico-units: no overflow; multiplied here, exactly
        for invoice_id, rule_id, n, wrong in s.execute(q):
            charged[invoice_id] += int(n) * rates[rule_id]
            tokens[invoice_id] += int(n)
            mispriced[invoice_id] += int(wrong)
        for inv in s.scalars(select(Invoice).order_by(Invoice.period_start, Invoice.tenant)):
            body = inv.body
            items = cast(list[dict[str, Any]], body["lines"])
            lines = sum(int(x["tokens"]) for x in items if x["kind"] != "discount")
            ledger = s.execute(
                select(func.sum(UsageRow.prompt_tokens + UsageRow.completion_tokens)).where(
                    UsageRow.request_id.in_(
                        select(UsageCharge.request_id).where(UsageCharge.invoice_id == inv.id)
                    )
                )
            ).scalar()
            priced, discounted, consistent = _lines_pico(items, rates, inv.currency)
            subtotal, tax = totals(discounted, inv.currency, Decimal(inv.tax_rate))
            expected = {"subtotal": subtotal, "tax": tax, "total": subtotal + tax}
            arithmetic = all(str(body.get(k)) == str(v) for k, v in expected.items())
            billed = charged.get(inv.id, 0)
            same_tokens = lines == tokens.get(inv.id, 0) == int(ledger or 0)
            same_money = priced == billed and not mispriced.get(inv.id) and consistent
            out.append(
                {
                    "invoice": inv.number,
                    "tenant": inv.tenant,
                    "currency": inv.currency,
                    "lines": lines,
                    "charges": tokens.get(inv.id, 0),
                    "ledger": int(ledger or 0),
                    "amount_lines": Money(priced, inv.currency).text(6),
                    "amount_charges": Money(billed, inv.currency).text(6),
                    "mispriced_charges": mispriced.get(inv.id, 0),
                    "total": str(body.get("total")),
                    "total_expected": str(expected["total"]),
                    "status": "ok" if same_tokens and same_money and arithmetic else "drift",
                }
            )
    return out
