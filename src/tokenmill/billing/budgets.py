"""Money budgets and prepaid credits, held by reservation.

At admission each budget that applies (the tenant's, the key's or its agent's, and the
tenant's prepaid credits) reserves the most the request can cost: its prompt bound at the
input price plus its output limit at the output price. Completion settles every reservation
to the exact cost. Concurrent requests therefore cannot spend past a limit by more than the
configured tolerance. Crossing a budget's soft share (80% by default) raises one alert per
period; exhausting it answers 429 `budget_exceeded`.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.core.errors import InvalidRequest, NotFound, RateLimited
from tokenmill.core.ids import new_id
from tokenmill.core.money import MICRO_PER_PICO, Money
from tokenmill.core.reservations import (
    PERIODS,
    Exhausted,
    Reservation,
    ReservationBook,
    period_start,
)
from tokenmill.security.keys import Principal
from tokenmill.store.tables import ApiKey, Credit, MoneyBudget, Tenant, UsageCharge, UsageRow

HOLDER_KINDS = ("tenant", "key", "agent")


@dataclass(frozen=True)
class Budget:
    id: str
    holder: str
    currency: str
    limit_pico: int
    period: str
    soft_pct: int

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "holder": self.holder,
            "currency": self.currency,
            "limit": Money(self.limit_pico, self.currency).text(6),
            "period": self.period,
            "soft_pct": self.soft_pct,
        }


AlertSink = Callable[[Budget, int], Awaitable[None]]  # (budget, pico used) once per period


def _tokens_by_rule(
    engine: Engine, holder: str, currency: str, since: float | None
) -> list[tuple[str, int]]:
    """The holder's charged tokens per price rule since `since` (rates applied by the caller,
    in Python, so the sum cannot overflow the database's integers)."""
    kind, _, ident = holder.partition(":")
    q = select(UsageCharge.rule_id, func.sum(UsageCharge.tokens)).where(
        UsageCharge.currency == currency
    )
    if kind == "tenant":
        q = q.where(UsageCharge.tenant == ident)
    else:
        usage = (
            UsageRow.agent == ident
            if kind == "agent"
            else UsageRow.key_id.in_(
                select(ApiKey.id).where((ApiKey.id == ident) | (ApiKey.budget_key == ident))
            )
        )
        q = q.join(UsageRow, UsageRow.request_id == UsageCharge.request_id).where(usage)
    if since is not None:
        q = q.where(UsageCharge.created_at >= since)
    with Session(engine) as s:
        return [(rule, int(n)) for rule, n in s.execute(q.group_by(UsageCharge.rule_id))]


class MoneyBudgets:
    def __init__(
        self, engine: Engine, book: PriceBook, on_alert: AlertSink, tolerance_pico: int = 0
    ) -> None:
        self._engine = engine
        self._book = book
        self._on_alert = on_alert
        self._tolerance = tolerance_pico
        self._budgets: dict[str, list[Budget]] = defaultdict(list)  # by holder
        self._reservations = ReservationBook(self._load_spent)
        self._alerted: set[tuple[str, float | None]] = set()

    def load(self) -> "MoneyBudgets":
        budgets: dict[str, list[Budget]] = defaultdict(list)
        with Session(self._engine) as s:
            for r in s.scalars(select(MoneyBudget).where(MoneyBudget.retired_at.is_(None))):
                budgets[r.holder].append(
                    Budget(
                        r.id,
                        r.holder,
                        r.currency,
                        r.limit_micros * MICRO_PER_PICO,
                        r.period,
                        r.soft_pct,
                    )
                )
            grants = select(Credit.tenant, Credit.currency, func.sum(Credit.amount_micros))
            for tenant, currency, total in s.execute(
                grants.group_by(Credit.tenant, Credit.currency)
            ):
                holder = f"tenant:{tenant}"
                budgets[holder].append(
                    Budget(
                        f"credit:{tenant}:{currency}",
                        holder,
                        currency,
                        int(total) * MICRO_PER_PICO,
                        "total",
                        90,
                    )
                )
        self._budgets = budgets
        return self

    async def _load_spent(self, budget_id: str, since: float | None) -> int:
        budget = next(b for bs in self._budgets.values() for b in bs if b.id == budget_id)
        rates = {r.id: r.pico_per_token for r in self._book.rules()}
        rows = await asyncio.to_thread(
            _tokens_by_rule, self._engine, budget.holder, budget.currency, since
        )
        return sum(n * rates[rule] for rule, n in rows)

    def applicable(self, p: Principal) -> list[Budget]:
        return [
            *self._budgets.get(f"tenant:{p.tenant}", ()),
            *self._budgets.get(p.budget_holder, ()),
        ]

    def cost(
        self, p: Principal, model: str, at: float, prompt: int, cached: int, output: int
    ) -> Money:
        """Exact cost of a request's tokens, at the prices rating will charge."""
        total, currency = 0, "USD"
        for cls, n in (("input", prompt - cached), ("cached_input", cached), ("output", output)):
            rule = self._book.rule_for(model, cls, p.tenant, at)
            total += max(0, n) * rule.pico_per_token
            currency = rule.currency
        return Money(total, currency)

    async def hold(
        self, p: Principal, model: str, prompt_bound: int, max_output: int, now: float
    ) -> list[Reservation]:
        budgets = self.applicable(p)
        if not budgets:
            return []
        most = self.cost(p, model, now, prompt_bound, 0, max_output)
        held: list[Reservation] = []
        try:
            for b in budgets:
                if b.currency != most.currency:
                    continue  # priced in another currency: this budget does not count it
                held.append(
                    await self._reservations.reserve(
                        b.id, b.limit_pico + self._tolerance, b.period, most.pico, now
                    )
                )
                await self._maybe_alert(b, now)
        except Exhausted as exc:
            for r in held:
                self._reservations.settle(r, 0)
            b = next(x for x in budgets if x.id == exc.holder)
            left = Money(exc.left, b.currency).text(6)
            retry = 3600.0 if exc.retry_at is None else exc.retry_at - now
            per = "in total" if b.period == "total" else f"per {b.period}"
            raise RateLimited(
                f"{b.holder} budget exhausted: {Money(b.limit_pico, b.currency).text()} "
                f"{b.currency} {per}, {left} left, this request may cost {most.text(6)}",
                retry_after_s=retry,
                code="budget_exceeded",
            ) from None
        return held

    async def _maybe_alert(self, b: Budget, now: float) -> None:
        used = self._reservations.used(b.id) or 0
        key = (b.id, period_start(b.period, now))
        if used * 100 >= b.limit_pico * b.soft_pct and key not in self._alerted:
            self._alerted.add(key)
            await self._on_alert(b, used)

    def settle(self, held: list[Reservation], spent: Money) -> None:
        for r in held:
            self._reservations.settle(r, spent.pico)

    # -- administration --

    def create(
        self, holder: str, currency: str, limit_micros: int, period: str, soft_pct: int = 80
    ) -> Budget:
        kind = holder.partition(":")[0]
        if kind not in HOLDER_KINDS or period not in PERIODS:
            raise InvalidRequest(
                f"a budget holder is {HOLDER_KINDS}:<name>, its period one of {PERIODS}"
            )
        row = MoneyBudget(
            id=new_id("bud"),
            holder=holder,
            currency=currency.upper(),
            limit_micros=limit_micros,
            period=period,
            soft_pct=soft_pct,
            created_at=datetime.now(UTC),
        )
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        self.load()
        return next(b for b in self._budgets[holder] if b.id == row.id)

    def retire(self, budget_id: str) -> None:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(MoneyBudget, budget_id)
            if row is None:
                raise NotFound(f"budget '{budget_id}' does not exist", param="budget_id")
            row.retired_at = row.retired_at or datetime.now(UTC)
        self.load()

    def grant(self, tenant: str, currency: str, amount_micros: int, note: str) -> None:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, tenant) is None:
                raise NotFound(f"tenant '{tenant}' does not exist", param="tenant")
            s.add(
                Credit(
                    id=new_id("cr"),
                    tenant=tenant,
                    currency=currency.upper(),
                    amount_micros=amount_micros,
                    note=note,
                    granted_at=datetime.now(UTC),
                )
            )
        self.load()

    def used_ratios(self) -> list[tuple[str, str, str, float]]:
        """(budget, holder, period, share used) for each budget a request was checked against
        since the start (the others' spending is not loaded: left out, not shown as 0)."""
        out, now = [], time.time()
        for b in (b for bs in self._budgets.values() for b in bs):
            used = self._reservations.used(b.id, period_start(b.period, now))
            if used is not None and b.limit_pico > 0:
                out.append((b.id, b.holder, b.period, used / b.limit_pico))
        return out

    def views(self) -> list[dict[str, object]]:
        return [
            {**b.view(), "used": Money(self._reservations.used(b.id) or 0, b.currency).text(6)}
            for bs in self._budgets.values()
            for b in bs
        ]
