"""Brute-force brake: an address that keeps failing to authenticate (bad keys, or none at all)
is locked out for a while, and its requests are refused before their key is even looked at
(refusing only the bad ones would still let it guess).

One exception keeps others on the same address working (a local admin beside a noisy local
process, clients behind one proxy): during a lockout a well-formed key is still checked unless
its visible prefix was named, by the failure that locked the address or by one since. Guessing
a whole 192-bit key is hopeless at any speed, so checking keys nobody aimed at gives nothing
away; what must stop is guessing at one key whose prefix is known, and such guesses name that
prefix: each prefix gets at most one check in a lockout.
"""

import time
from collections import deque
from dataclasses import dataclass, field

from tokenmill.core.errors import RateLimited

MAX_TRACKED = 10_000  # addresses with recent failures or a lockout; past it, idle ones go
MAX_NAMED = 64  # prefixes one lockout remembers (a few KB); past it, the oldest go first


@dataclass
class _Lockout:
    until: float
    named: dict[str, None] = field(default_factory=dict)  # prefixes, oldest first

    def name(self, prefix: str | None) -> None:
        if prefix is None or prefix in self.named:
            return
        if len(self.named) >= MAX_NAMED:
            del self.named[next(iter(self.named))]
        self.named[prefix] = None


class AuthThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 60.0, lockout_s: float = 60.0):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._failures: dict[str, deque[float]] = {}  # per address: its recent failures
        self._lockouts: dict[str, _Lockout] = {}

    def check(self, origin: str, prefix: str | None, now: float | None = None) -> None:
        """Refuse (429) a request from a locked-out address, unless it presents a key (`prefix`:
        its visible prefix; None for no key, or a secret that is not shaped like one) that
        the failures did not name."""
        now = time.monotonic() if now is None else now
        lockout = self._lockouts.get(origin)
        if lockout is None:
            return
        if now >= lockout.until:
            del self._lockouts[origin]
            return
        if prefix is not None and prefix not in lockout.named:
            return
        raise RateLimited(
            "too many failed authentication attempts from this address; wait and retry",
            retry_after_s=lockout.until - now,
            code="too_many_auth_failures",
        )

    def locked(self, origin: str, now: float | None = None) -> bool:
        """Whether the address is locked out (its last failure may just have locked it)."""
        now = time.monotonic() if now is None else now
        lockout = self._lockouts.get(origin)
        return lockout is not None and lockout.until > now

    def failed(self, origin: str, prefix: str | None, now: float | None = None) -> bool:
        """Count a failure (`prefix`: as for `check`); True when this one locks the address out.
        The failure that locks it names its prefix, and so does each failure during the
        lockout: that prefix is refused from then on, so each gets at most one check."""
        now = time.monotonic() if now is None else now
        lockout = self._lockouts.get(origin)
        if lockout is not None and lockout.until > now:
            lockout.name(prefix)
            return False
        if len(self._failures) + len(self._lockouts) > MAX_TRACKED:
            self.forget_idle(now)
        recent = self._failures.setdefault(origin, deque())
        recent.append(now)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(recent) < self.max_failures:
            return False
        lockout = _Lockout(now + self.lockout_s)
        lockout.name(prefix)
        self._lockouts[origin] = lockout
        del self._failures[origin]
        return True

    def forget_idle(self, now: float | None = None) -> None:
        """Drop addresses with nothing recent and ended lockouts, so a scan from many
        addresses cannot grow memory."""
        now = time.monotonic() if now is None else now
        for origin, recent in list(self._failures.items()):
            if not recent or recent[-1] <= now - self.window_s:
                del self._failures[origin]
        for origin, lockout in list(self._lockouts.items()):
            if lockout.until <= now:
                del self._lockouts[origin]
