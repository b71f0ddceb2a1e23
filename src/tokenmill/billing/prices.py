"""Price books: versioned, effective-dated rules per model and token class, with per-tenant
overrides. Rules are rows that are never edited: a change is a new rule that supersedes.

Which rule prices a token: among the rules for its class in effect at the time of use, a
tenant's own beats the general one, an exact model beats "*", then the latest in effect wins.
"""

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from tokenmill.core.errors import InvalidRequest, NotFound
from tokenmill.core.ids import new_id
from tokenmill.core.money import parse_rate, rate_text
from tokenmill.store.tables import PriceRule, Tenant

TOKEN_CLASSES = ("input", "cached_input", "output")
ANY_MODEL = "*"
# No rule takes effect before this: an earlier date (the epoch, a zero timestamp) is a mistake.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    book: str
    version: int
    model: str
    token_class: str
    currency: str
    pico_per_token: int
    tenant: str | None
    effective_from: float
    source: str

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "book": self.book,
            "version": self.version,
            "model": self.model,
            "token_class": self.token_class,
            "currency": self.currency,
            "price_per_1m": rate_text(self.pico_per_token),
            "tenant": self.tenant,
            "effective_from": datetime.fromtimestamp(self.effective_from, UTC).isoformat(),
            "source": self.source,
        }


def _rule(row: PriceRule) -> Rule:
    return Rule(
        row.id,
        row.book,
        row.version,
        row.model,
        row.token_class,
        row.currency,
        row.pico_per_token,
        row.tenant,
        row.effective_from,
        row.source,
    )


def default_book() -> list[dict[str, object]]:
    """The shipped price book as rule rows (one per model and token class)."""
    text = resources.files("tokenmill.billing").joinpath("data/price_book.toml").read_text()
    book = tomllib.loads(text)
    start = datetime.fromisoformat(book["effective_from"]).timestamp()
    return [
        {
            "book": book["name"],
            "version": book["version"],
            "model": r["model"],
            "token_class": cls,
            "currency": r["currency"],
            "pico_per_token": parse_rate(r[cls]),
            "tenant": None,
            "effective_from": start,
            "source": f"{r['source']}; {r['date']}",
        }
        for r in book["rule"]
        for cls in TOKEN_CLASSES
    ]


class PriceBook:
    """All rules, in memory (they are few and never change, only grow)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rules: list[Rule] = []

    def load(self) -> "PriceBook":
        """Install the shipped book (once; later starts find it) and read every rule."""
        shipped = default_book()
        with Session(self._engine) as s:
            first = shipped[0]
            q = select(PriceRule.id).where(
                PriceRule.book == first["book"], PriceRule.version == first["version"]
            )
            installed = s.scalars(q).first() is not None
        if not installed:
            self._insert(shipped)
        with Session(self._engine) as s:
            self._rules = [_rule(r) for r in s.scalars(select(PriceRule))]
        return self

    def _insert(self, rows: Iterable[dict[str, object]]) -> None:
        now = datetime.now(UTC)
        values = [{"id": new_id("pr"), "created_at": now, **r} for r in rows]
        if not values:
            return
        with self._engine.begin() as conn:
            conn.execute(insert(PriceRule), values)

    def add(
        self,
        model: str,
        prices: dict[str, str],
        currency: str,
        *,
        tenant: str | None = None,
        effective_from: float,
        source: str,
        book: str = "custom",
        not_before: float | None = None,
    ) -> list[Rule]:
        """New rules, as the next version of `book` (versions count across the whole book).
        `tenant`, when given, must be one; `effective_from` no earlier than 2000 nor than
        `not_before` (the API passes about now: no backdating, see `_check_start`)."""
        unknown = set(prices) - set(TOKEN_CLASSES)
        if unknown or not prices:
            raise InvalidRequest(f"prices are per token class {TOKEN_CLASSES}", param="prices")
        _check_start(effective_from, not_before)
        if tenant is not None:
            self._check_tenant(tenant)
        version = 1 + max((r.version for r in self._rules if r.book == book), default=0)
        rows: list[dict[str, object]] = [
            {
                "book": book,
                "version": version,
                "model": model,
                "token_class": cls,
                "currency": currency.upper(),
                "pico_per_token": _rate(price),
                "tenant": tenant,
                "effective_from": effective_from,
                "source": source,
            }
            for cls, price in prices.items()
        ]
        self._insert(rows)
        self.load()
        return [r for r in self._rules if r.book == book and r.version == version]

    def _check_tenant(self, tenant: str) -> None:
        with Session(self._engine) as s:
            if s.get(Tenant, tenant) is None:
                raise InvalidRequest(
                    f"tenant: '{tenant}' is not a tenant (a contract price is for an existing "
                    "one; leave tenant out for every tenant's price)",
                    param="tenant",
                )

    def rules(self) -> list[Rule]:
        return sorted(self._rules, key=lambda r: (r.model, r.token_class, r.effective_from))

    def rule_for(self, model: str, token_class: str, tenant: str, at: float) -> Rule:
        best: Rule | None = None
        best_key: tuple[bool, bool, float, int] | None = None
        for r in self._rules:
            if r.token_class != token_class or r.effective_from > at:
                continue
            if r.model not in (model, ANY_MODEL) or r.tenant not in (tenant, None):
                continue
            key = (r.tenant is not None, r.model != ANY_MODEL, r.effective_from, r.version)
            if best_key is None or key > best_key:
                best, best_key = r, key
        if best is None:
            raise NotFound(f"no price for {model} {token_class} tokens", code="no_price")
        return best


def _check_start(effective_from: float, not_before: float | None) -> None:
    """A rule prices the usage from its start on, but usage is rated as the ledger takes it,
    at the rules then in force, and never again: a backdated rule would not reprice what was
    already rated (an invoice may be issued on it), only the odd record rated late, so one
    period would be billed at two prices. Hence: from `not_before` (about now) on."""
    when = _iso(effective_from)
    if effective_from < EARLIEST:
        raise InvalidRequest(
            f"effective_from: {when} is before {_iso(EARLIEST)}; give the date the price starts",
            param="effective_from",
        )
    if not_before is not None and effective_from < not_before:
        raise InvalidRequest(
            f"effective_from: {when} is in the past (before {_iso(not_before)}); a price takes "
            "effect now or later: usage until now is already rated at the prices then in force, "
            "and a new rule never reprices it",
            param="effective_from",
        )


def _iso(at: float) -> str:
    try:
        return datetime.fromtimestamp(at, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(at)


def _rate(price: str) -> int:
    try:
        return parse_rate(price)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(str(exc), param="prices") from None
