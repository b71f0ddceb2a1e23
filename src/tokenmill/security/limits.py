"""Per-key rate limits: requests and tokens per minute (token buckets) and concurrency.

In-process: one gateway's view. Several gateways share limits through Redis (scale-out issue).
"""

import math
import time
from dataclasses import dataclass, field

from tokenmill.core.errors import RateLimited
from tokenmill.security.keys import Principal


@dataclass
class TokenBucket:
    """Holds up to `capacity`, refilled at capacity per minute; may go negative when a
    request turns out dearer than its estimate, which then delays the next ones."""

    capacity: float
    level: float = math.nan
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if math.isnan(self.level):
            self.level = self.capacity

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.updated) * rate)
        self.updated = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0: it fits now). Asking for more than the capacity
        waits only for a full bucket: a large request is slow, not impossible."""
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / (self.capacity / 60.0))


@dataclass
class _KeyState:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    in_flight: int = 0


class KeyLimiter:
    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def _state(self, p: Principal) -> _KeyState:
        state = self._keys.get(p.key_id)
        if state is None:
            rpm, tpm = p.limits.rpm, p.limits.tpm
            state = _KeyState(TokenBucket(rpm) if rpm else None, TokenBucket(tpm) if tpm else None)
            self._keys[p.key_id] = state
        return state

    def admit(self, p: Principal, tokens: int, now: float | None = None) -> None:
        """Take one request and `tokens` (its estimate) from the key's allowance, or refuse."""
        now = time.monotonic() if now is None else now
        state = self._state(p)
        if p.limits.concurrency is not None and state.in_flight >= p.limits.concurrency:
            raise RateLimited(
                f"this key allows {p.limits.concurrency} concurrent requests",
                retry_after_s=1,
                code="concurrency_limit_exceeded",
            )
        wait = max(
            state.requests.wait_for(1, now) if state.requests else 0.0,
            state.tokens.wait_for(tokens, now) if state.tokens else 0.0,
        )
        if wait > 0:
            what = "requests" if state.requests and state.requests.level < 1 else "tokens"
            raise RateLimited(
                f"this key's {what} per minute are spent",
                retry_after_s=wait,
                code="rate_limit_exceeded",
            )
        if state.requests:
            state.requests.level -= 1
        if state.tokens:
            state.tokens.level -= tokens
        state.in_flight += 1

    def release(self, p: Principal, estimated: int, actual: int) -> None:
        state = self._state(p)
        state.in_flight -= 1
        if state.tokens:
            state.tokens.level -= actual - estimated
