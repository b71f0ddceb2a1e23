"""Invoices: a tenant's period, closed after a grace for late usage, issued once, never changed.

Closing bills every charge of the tenant not billed yet that happened before the period's end:
those inside the period as usage lines, older ones (usage that arrived after its own period
closed) as adjustment lines naming the month they belong to. So a correction is an entry in a
later invoice, never an edit; the database refuses edits and deletions (migrations 0006,
0011), and each invoice is sealed as it is issued (`store/seals.py`), so an edit made around
the database's refusal shows.

Amounts: a line's is its tokens x its rule's rate, an exact integer of pico-units (group sums
are taken over tokens, which cannot overflow, then multiplied in Python). The subtotal is
rounded once to the currency's minor unit, half to even; the tax is on the rounded subtotal.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.core.errors import Conflict, InvalidRequest, NotFound
from tokenmill.core.ids import new_id
from tokenmill.core.money import Money, exponent, rate_text
from tokenmill.store.seals import InvoiceSeals
from tokenmill.store.tables import DiscountTier, Invoice, UsageCharge


@dataclass(frozen=True)
class Period:
    start: float
    end: float
    label: str  # "2026-11"

    @classmethod
    def month(cls, label: str) -> "Period":
        try:
            start = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidRequest(f"a period is a month, YYYY-MM, not {label!r}") from None
        nxt = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return cls(start.timestamp(), nxt.timestamp(), label)


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


def parse_tax_rate(text: str) -> Decimal:
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"tax_rate must be a decimal such as 0.06, not {text!r}") from None
    if not 0 <= rate < 1:
        raise InvalidRequest("tax_rate must be at least 0 and below 1", param="tax_rate")
    return rate


def discount_off(base_pico: int, percent: Decimal) -> int:
    """A volume discount on `base_pico` of usage: negative pico-units, rounded half to even."""
    return -int((Decimal(base_pico) * percent / 100).to_integral_value(rounding=ROUND_HALF_EVEN))


def totals(subtotal_pico: int, currency: str, tax_rate: Decimal) -> tuple[Decimal, Decimal]:
    """An invoice's subtotal (rounded once, half to even, to the minor unit) and its tax."""
    rounded = Money(subtotal_pico, currency).rounded()
    return rounded, (rounded * tax_rate).quantize(Decimal(1).scaleb(-exponent(currency)))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class Invoices:
    def __init__(self, engine: Engine, book: PriceBook, seals: InvoiceSeals | None = None) -> None:
        self._engine = engine
        self._book = book
        self._seals = seals  # None: unsealed (tests of billing alone); the app always seals

    def close(
        self, tenant: str, period: Period, *, now: float, grace_s: float, tax_rate: Decimal
    ) -> list[dict[str, Any]]:
        """Issue the tenant's invoices for `period`, one per currency it was charged in."""
        if now < period.end + grace_s:
            raise Conflict(
                f"period {period.label} takes late usage until {_iso(period.end + grace_s)}; "
                "close it after that",
                code="period_open",
            )
        issued, sealed = [], []
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            done = select(Invoice.id).where(
                Invoice.tenant == tenant, Invoice.period_start == period.start
            )
            self._refuse_if_earlier_open(s, tenant, period)
            if s.scalars(done).first() is not None:
                raise Conflict(
                    f"{tenant}'s {period.label} is already invoiced; later usage "
                    "goes into the next period's invoice",
                    code="invoice_exists",
                )
            groups = s.execute(
                select(
                    UsageCharge.currency,
                    UsageCharge.model,
                    UsageCharge.token_class,
                    UsageCharge.rule_id,
                    UsageCharge.created_at < period.start,
                    func.min(UsageCharge.created_at),
                    func.sum(UsageCharge.tokens),
                )
                .where(
                    UsageCharge.tenant == tenant,
                    UsageCharge.invoice_id.is_(None),
                    UsageCharge.created_at < period.end,
                )
                .group_by(
                    UsageCharge.currency,
                    UsageCharge.model,
                    UsageCharge.token_class,
                    UsageCharge.rule_id,
                    UsageCharge.created_at < period.start,
                )
            ).all()
            by_currency: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for currency, model, cls, rule_id, late, first_at, tokens in groups:
                by_currency[currency].append(
                    self._line(model, cls, rule_id, late, first_at, int(tokens))
                )
            if not by_currency:  # nothing used: an empty invoice still records the close
                by_currency[self._book.rule_for("*", "input", tenant, period.start).currency] = []
            for currency, lines in sorted(by_currency.items()):
                usage = [x for x in lines if x["kind"] == "usage"]
                percent = self.discount_percent(s, tenant, sum(x["tokens"] for x in usage))
                if percent:
                    lines.append(_discount(usage, percent, currency))
                invoice = self._issue(tenant, period, currency, lines, tax_rate, now)
                try:
                    s.add(invoice)
                    s.flush()
                except IntegrityError:
                    raise Conflict(
                        f"{tenant}'s {period.label} is already invoiced in {currency}",
                        code="invoice_exists",
                    ) from None
                s.execute(
                    update(UsageCharge)
                    .where(
                        UsageCharge.tenant == tenant,
                        UsageCharge.invoice_id.is_(None),
                        UsageCharge.currency == currency,
                        UsageCharge.created_at < period.end,
                    )
                    .values(invoice_id=invoice.id)
                )
                if self._seals is not None:
                    sealed.append(self._seals.seal(s, invoice.id))
                issued.append(invoice.body)
        if self._seals is not None:
            self._seals.announce(sealed)
        return issued

    def _line(
        self, model: str, token_class: str, rule_id: str, late: bool, first_at: float, tokens: int
    ) -> dict[str, Any]:
        rule = next(r for r in self._book.rules() if r.id == rule_id)
        amount = Money(tokens * rule.pico_per_token, rule.currency)
        origin = month_of(first_at)
        label = token_class.replace("_", " ")
        return {
            "kind": "adjustment" if late else "usage",
            "model": model,
            "token_class": token_class,
            "tokens": tokens,
            "unit_price": rate_text(rule.pico_per_token),
            "unit": "per 1M tokens",
            "amount": amount.text(6),
            "amount_pico": amount.pico,
            "price_rule": rule.id,
            "description": f"late usage from {origin}: {model} {label} tokens"
            if late
            else f"{model} {label} tokens",
        }

    @staticmethod
    def _refuse_if_earlier_open(s: Session, tenant: str, period: Period) -> None:
        """Months close in order: usage from a month never invoiced is that month's, not a
        later month's adjustment."""
        oldest = s.scalar(
            select(func.min(UsageCharge.created_at)).where(
                UsageCharge.tenant == tenant,
                UsageCharge.invoice_id.is_(None),
                UsageCharge.created_at < period.start,
            )
        )
        if oldest is None:
            return
        earlier = Period.month(month_of(oldest))
        closed = s.scalars(
            select(Invoice.id).where(
                Invoice.tenant == tenant, Invoice.period_start == earlier.start
            )
        ).first()
        if closed is None:
            raise Conflict(
                f"{tenant} has usage in {earlier.label}, which is not invoiced: "
                f"close {earlier.label} first",
                code="earlier_period_open",
            )

    def discount_percent(self, s: Session, tenant: str, usage_tokens: int) -> Decimal:
        """The best tier the month's usage reaches: the tenant's own tiers if it has any."""
        tiers = list(s.scalars(select(DiscountTier)))
        own = [t for t in tiers if t.tenant == tenant] or [t for t in tiers if t.tenant is None]
        reached = [Decimal(t.percent) for t in own if t.min_tokens <= usage_tokens]
        return max(reached, default=Decimal(0))

    def _issue(
        self,
        tenant: str,
        period: Period,
        currency: str,
        lines: list[dict[str, Any]],
        tax_rate: Decimal,
        now: float,
    ) -> Invoice:
        order = {"usage": 0, "discount": 1, "adjustment": 2}
        lines.sort(key=lambda x: (order[x["kind"]], x["model"], x["token_class"]))
        rounded, tax = totals(sum(int(x.pop("amount_pico")) for x in lines), currency, tax_rate)
        invoice_id = new_id("inv")
        body = {
            "id": invoice_id,
            "number": f"TM-{period.label}-{tenant}-{currency}",
            "tenant": tenant,
            "currency": currency,
            "period_start": _iso(period.start),
            "period_end": _iso(period.end),
            "issued_at": _iso(now),
            "lines": lines,
            "subtotal": str(rounded),
            "tax_rate": str(tax_rate),
            "tax": str(tax),
            "total": str(rounded + tax),
        }
        return Invoice(
            id=invoice_id,
            number=body["number"],
            tenant=tenant,
            currency=currency,
            period_start=period.start,
            period_end=period.end,
            issued_at=datetime.fromtimestamp(now, UTC),
            tax_rate=str(tax_rate),
            body=body,
        )

    def add_tier(self, tenant: str | None, min_tokens: int, percent: Decimal) -> dict[str, Any]:
        if not 0 < percent < 100 or min_tokens < 0:
            raise InvalidRequest("a tier is min_tokens >= 0 and a percent between 0 and 100")
        row = DiscountTier(
            id=new_id("dt"),
            tenant=tenant,
            min_tokens=min_tokens,
            percent=str(percent),
            created_at=datetime.now(UTC),
        )
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        return _tier_view(row)

    def tiers(self) -> list[dict[str, Any]]:
        with Session(self._engine) as s:
            q = select(DiscountTier).order_by(DiscountTier.tenant, DiscountTier.min_tokens)
            return [_tier_view(t) for t in s.scalars(q)]

    def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        with Session(self._engine) as s:
            q = select(Invoice).order_by(Invoice.period_start, Invoice.tenant)
            if tenant is not None:
                q = q.where(Invoice.tenant == tenant)
            return [_summary(r) for r in s.scalars(q)]

    def get(self, invoice_id: str, reach: str | None = None) -> dict[str, Any]:
        with Session(self._engine) as s:
            row = s.get(Invoice, invoice_id)
            if row is None or (reach is not None and row.tenant != reach):
                raise NotFound(f"invoice '{invoice_id}' does not exist", param="invoice_id")
            return dict(row.body)


def _discount(usage: list[dict[str, Any]], percent: Decimal, currency: str) -> dict[str, Any]:
    off = discount_off(sum(int(x["amount_pico"]) for x in usage), percent)
    tokens = sum(int(x["tokens"]) for x in usage)
    return {
        "kind": "discount",
        "model": "",
        "token_class": "",
        "tokens": tokens,
        "unit_price": f"{percent}%",
        "unit": "of usage",
        "amount": Money(off, currency).text(6),
        "amount_pico": off,
        "price_rule": "",
        "description": f"volume discount {percent}% for {tokens:,} tokens",
    }


def _tier_view(t: DiscountTier) -> dict[str, Any]:
    return {"id": t.id, "tenant": t.tenant, "min_tokens": t.min_tokens, "percent": t.percent}


def _summary(row: Invoice) -> dict[str, Any]:
    body = row.body
    keys = (
        "id",
        "number",
        "tenant",
        "currency",
        "period_start",
        "period_end",
        "issued_at",
        "subtotal",
        "tax",
        "total",
    )
    return {k: body[k] for k in keys}
