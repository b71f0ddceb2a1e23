"""Token budgets on keys and agents, held by reservation (core/reservations.py): admission
reserves the prompt bound + the output limit, completion settles to what was spent."""

from tokenmill.core.errors import RateLimited
from tokenmill.core.reservations import Exhausted, Reservation, ReservationBook, SpentLoader
from tokenmill.security.keys import Principal

__all__ = ["Reservation", "SpentLoader", "TokenBudgets"]


class TokenBudgets:
    def __init__(self, load_spent: SpentLoader) -> None:
        self._book = ReservationBook(load_spent)

    async def reserve(self, p: Principal, tokens: int, now: float) -> Reservation | None:
        budget = p.limits.budget_tokens
        if budget is None:
            return None
        try:
            return await self._book.reserve(
                p.budget_holder, budget, p.limits.budget_period, tokens, now
            )
        except Exhausted as exc:
            retry = 3600.0 if exc.retry_at is None else exc.retry_at - now
            raise RateLimited(
                f"{exc.holder.split(':')[0]} budget exhausted: {budget} tokens per "
                f"{p.limits.budget_period}, {exc.left} left, this request may use {tokens}",
                retry_after_s=retry,
                code="budget_exceeded",
            ) from None

    def settle(self, r: Reservation, spent: int) -> None:
        self._book.settle(r, spent)

    def spent(self, holder: str) -> int | None:
        return self._book.used(holder)
