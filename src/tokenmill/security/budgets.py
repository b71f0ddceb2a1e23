"""Token budgets held by reservation: admission reserves the most a request can spend
(its prompt estimate + max output), completion settles to what it did spend. Concurrent
requests therefore cannot overspend together. (Money budgets come with billing.)"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tokenmill.core.errors import RateLimited
from tokenmill.security.keys import Principal

# (holder, start of period as unix seconds or None for all time) -> tokens in the ledger
SpentLoader = Callable[[str, float | None], Awaitable[int]]


def period_start(period: str, now: float) -> float | None:
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


@dataclass
class _Account:
    since: float | None
    spent: int  # settled
    reserved: int = 0


@dataclass(frozen=True)
class Reservation:
    holder: str
    since: float | None
    tokens: int


class TokenBudgets:
    def __init__(self, load_spent: SpentLoader) -> None:
        self._load = load_spent
        self._accounts: dict[str, _Account] = {}

    async def _account(self, holder: str, since: float | None) -> _Account:
        acct = self._accounts.get(holder)
        if acct is None or acct.since != since:  # first use, or a new period began
            spent = await self._load(holder, since)
            acct = self._accounts.get(holder)  # another request may have loaded it meanwhile
            if acct is None or acct.since != since:
                acct = self._accounts[holder] = _Account(since, spent)
        return acct

    async def reserve(self, p: Principal, tokens: int, now: float) -> Reservation | None:
        budget = p.limits.budget_tokens
        if budget is None:
            return None
        holder = p.budget_holder
        since = period_start(p.limits.budget_period, now)
        acct = await self._account(holder, since)
        if acct.spent + acct.reserved + tokens > budget:
            left = max(0, budget - acct.spent - acct.reserved)
            retry = 3600.0 if since is None else _next_period(p.limits.budget_period, now) - now
            raise RateLimited(
                f"{holder.split(':')[0]} budget exhausted: {budget} tokens per "
                f"{p.limits.budget_period}, {left} left, this request may use {tokens}",
                retry_after_s=retry,
                code="budget_exceeded",
            )
        acct.reserved += tokens
        return Reservation(holder, since, tokens)

    def settle(self, r: Reservation, spent: int) -> None:
        acct = self._accounts.get(r.holder)
        if acct is None or acct.since != r.since:
            return  # the period rolled over while it ran: the ledger has the tokens
        acct.reserved -= r.tokens
        acct.spent += spent

    def spent(self, holder: str) -> int | None:
        acct = self._accounts.get(holder)
        return None if acct is None else acct.spent


def _next_period(period: str, now: float) -> float:
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return (period_start("day", now) or now) + 86400
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()
