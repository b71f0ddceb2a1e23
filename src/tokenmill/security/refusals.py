"""Refusals of callers that did not authenticate (no key, a bad key, a locked-out address),
audited in aggregate, so that a flood of them cannot write one audit record each.

Within a window (from one `flush` to the next, every `window_s`), for each address and refusal
code, the first refusal and one that locked the address out are audited one by one, at once
(`note` says so; the caller writes them, in its usual shape); the others are counted, and
`flush` writes one `auth.refusals` record per address and code with how many, the first and
last time, and a few request ids, routes and key prefixes. At most `max_origins` addresses are
tracked a window; refusals from any further address fold into one bucket (origin "other") and
are never audited one by one, so a scan from many addresses is bounded too.

Refusals of an authenticated key (scope, role) are not counted here: they name who asked.
"""

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tokenmill.security.audit import AuditLog

MAX_ORIGINS = 256
SAMPLES = 5  # request ids, routes, key prefixes and folded addresses kept per summary
OTHER = "other"
SUMMARY_ACTION = "auth.refusals"
LOCKED_OUT = "too_many_auth_failures"  # the code of a refusal during a lockout (429)


@dataclass
class _Tally:
    count: int = 0
    first_at: str = ""
    last_at: str = ""
    request_ids: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    key_prefixes: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)

    def add(
        self, route: str, request_id: str | None, prefix: str | None, address: str | None
    ) -> None:
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        self.count += 1
        self.first_at = self.first_at or at
        self.last_at = at
        for samples, value in ((self.request_ids, request_id), (self.routes, route),
                               (self.key_prefixes, prefix), (self.addresses, address)):  # fmt: skip
            if value is not None and value not in samples and len(samples) < SAMPLES:
                samples.append(value)


class RefusalTally:
    def __init__(self, audit: AuditLog, window_s: float = 60.0, max_origins: int = MAX_ORIGINS):
        self.window_s = window_s
        self.max_origins = max_origins
        self._audit = audit
        self._lock = threading.Lock()  # note() runs on the event loop, flush() in a thread
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._audited: set[tuple[str, str]] = set()  # (address, code) audited one by one
        self._origins: set[str] = set()

    def note(
        self,
        origin: str,
        code: str,
        route: str,
        request_id: str | None = None,
        key_prefix: str | None = None,
        locked: bool = False,
    ) -> bool:
        """Count one refusal; True when the caller should audit it one by one now: the first of
        its address and code this window, or the one that locked the address out."""
        with self._lock:
            tracked = origin in self._origins or len(self._origins) < self.max_origins
            if tracked:
                self._origins.add(origin)
                if locked or (origin, code) not in self._audited:
                    self._audited.add((origin, code))
                    return True
            tally = self._tallies.setdefault((origin if tracked else OTHER, code), _Tally())
            tally.add(route, request_id, key_prefix, None if tracked else origin)
            return False

    def flush(self) -> int:
        """Close the window: one summary record per address and code counted in it. Returns
        how many records it wrote."""
        with self._lock:
            closed, self._tallies = self._tallies, {}
            self._audited.clear()
            self._origins.clear()
        for (origin, code), tally in closed.items():
            detail: dict[str, object] = {
                "code": code,
                "count": tally.count,  # refusals not audited one by one
                "first_at": tally.first_at,
                "last_at": tally.last_at,
                "window_s": self.window_s,
                "request_ids": tally.request_ids,
                "routes": tally.routes,
                "key_prefixes": tally.key_prefixes,
            }
            if origin == OTHER:
                detail["addresses"] = tally.addresses
            self._audit.append(
                "unauthenticated",
                SUMMARY_ACTION,
                "refused" if code == LOCKED_OUT else "denied",
                resource="auth",
                origin=origin,
                detail=detail,
            )
        return len(closed)
