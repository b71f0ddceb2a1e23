"""Brute-force brake: an origin that keeps presenting bad keys is refused for a while,
before its next key is even looked at (refusing only the bad ones would still let it guess)."""

import time
from collections import deque

from tokenmill.core.errors import RateLimited

MAX_TRACKED = 10_000  # origins with recent failures; past it, idle ones are dropped


class AuthThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 60.0, lockout_s: float = 60.0):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def check(self, origin: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        until = self._locked_until.get(origin)
        if until is None:
            return
        if now < until:
            raise RateLimited(
                "too many failed authentication attempts from this address; wait and retry",
                retry_after_s=until - now,
                code="too_many_auth_failures",
            )
        del self._locked_until[origin]

    def locked(self, origin: str, now: float | None = None) -> bool:
        """Whether the origin is locked out (its last failure may just have locked it)."""
        now = time.monotonic() if now is None else now
        return self._locked_until.get(origin, 0.0) > now

    def failed(self, origin: str, now: float | None = None) -> bool:
        """Count a failure; True when this one locks the origin out."""
        now = time.monotonic() if now is None else now
        if len(self._failures) > MAX_TRACKED:
            self.forget_idle(now)
        recent = self._failures.setdefault(origin, deque())
        recent.append(now)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(recent) < self.max_failures:
            return False
        self._locked_until[origin] = now + self.lockout_s
        del self._failures[origin]
        return True

    def forget_idle(self, now: float | None = None) -> None:
        """Drop origins with nothing recent, so a scan from many addresses cannot grow memory."""
        now = time.monotonic() if now is None else now
        for origin, recent in list(self._failures.items()):
            if not recent or recent[-1] <= now - self.window_s:
                del self._failures[origin]
