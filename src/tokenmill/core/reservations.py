"""Budgets held by reservation: admission reserves the most a request can spend, completion
settles to what it did spend, so concurrent requests cannot overspend together. The unit is
the caller's (tokens, pico-units of money); spend already made is loaded once per period."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# (holder, start of period as unix seconds or None for all time) -> spent so far
SpentLoader = Callable[[str, float | None], Awaitable[int]]
PERIODS = ("day", "month", "total")


def period_start(period: str, now: float) -> float | None:
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


def next_period(period: str, now: float) -> float | None:
    """When the period after `now` begins (None: a total never renews)."""
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return (period_start("day", now) or now) + 86400
    if period == "month":
        year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
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
    amount: int


class Exhausted(Exception):
    def __init__(self, holder: str, limit: int, left: int, retry_at: float | None) -> None:
        super().__init__(f"{holder}: {left} of {limit} left")
        self.holder, self.limit, self.left, self.retry_at = holder, limit, left, retry_at


class ReservationBook:
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

    async def reserve(
        self, holder: str, limit: int, period: str, amount: int, now: float
    ) -> Reservation:
        since = period_start(period, now)
        acct = await self._account(holder, since)
        if acct.spent + acct.reserved + amount > limit:
            left = max(0, limit - acct.spent - acct.reserved)
            raise Exhausted(holder, limit, left, next_period(period, now))
        acct.reserved += amount
        return Reservation(holder, since, amount)

    def settle(self, r: Reservation, spent: int) -> None:
        acct = self._accounts.get(r.holder)
        if acct is None or acct.since != r.since:
            return  # the period rolled over while it ran: the ledger has it
        acct.reserved -= r.amount
        acct.spent += spent

    def used(self, holder: str, since: float | None = None) -> int | None:
        """Spent and reserved in the current period, or None if not loaded. With `since` (the
        period's start now): 0 when what is loaded is an earlier period's."""
        acct = self._accounts.get(holder)
        if acct is None:
            return None
        if since is not None and acct.since != since:
            return 0
        return acct.spent + acct.reserved
