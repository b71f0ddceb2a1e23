"""The economics report for any window without re-reading a month of requests each time.

A window's measure (economics/measured.py) is the sum of its parts' measures, so each closed
hour is measured once and kept in memory, keyed by the node file's layout (which deployment
runs where: the only part of it a measure depends on). A window is then its whole hours,
taken from memory, plus its ragged ends and any hour too recent to be final, measured from
the ledger; prices, power and costs are worked out for the whole window each time.

An hour is final once no record for it can still arrive: a request is recorded when it ends,
at most `upstream_timeout_s` after it was sent (and its queue wait before that), so
SETTLE_S after the hour ends its records are in. A restart forgets the kept hours (a
journal replay after a crash may add records to old hours); `warm` measures them again in
the background, so the first page after a start is the only slow one.
"""

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from tokenmill.economics.accounting import PowerOf, report
from tokenmill.economics.live import measured_in
from tokenmill.economics.measured import Measured
from tokenmill.economics.nodes import Node
from tokenmill.store.tables import UsageRow

HOUR_S = 3600
SETTLE_S = 1800.0  # the longest a request may queue and run (600 + 600 s), and margin
KEPT_HOURS = 24 * 62  # two months of hours: the console's longest preset range is 30 days

Layout = tuple[tuple[str, tuple[str, ...]], ...]


def layout(nodes: Sequence[Node]) -> Layout:
    return tuple((n.name, n.deployments) for n in nodes)


class HourlyEconomics:
    def __init__(self, db: Engine) -> None:
        self._db = db
        self._hours: dict[tuple[Layout, int], Measured] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def report(
        self,
        nodes: Sequence[Node],
        since: float,
        until: float,
        power_of: PowerOf,
        now: float | None = None,
    ) -> dict[str, Any]:
        return report(self.measured(nodes, since, until, now), nodes, since, until, power_of)

    def measured(
        self, nodes: Sequence[Node], since: float, until: float, now: float | None = None
    ) -> Measured:
        now = time.time() if now is None else now
        low = math.ceil(since / HOUR_S) * HOUR_S
        high = math.floor(until / HOUR_S) * HOUR_S
        if low >= high:
            return measured_in(self._db, nodes, since, until)
        total = Measured()
        if since < low:
            total.add(measured_in(self._db, nodes, since, low))
        # Hours before the first record or after now hold nothing: a window from 1970 or to
        # 9999 costs no more than the hours that have data.
        first, last = self._data_hours(now)
        for hour in range(max(low, first), min(high, last), HOUR_S):
            total.add(self._hour(nodes, hour, now))
        if high < until:
            total.add(measured_in(self._db, nodes, high, until))
        return total

    def _data_hours(self, now: float) -> tuple[int, int]:
        """[the first record's hour, the end of the current hour): where measures can be."""
        with self._db.connect() as conn:
            first = conn.scalar(select(func.min(UsageRow.created_at)))
        last = math.ceil(now / HOUR_S) * HOUR_S
        return (last, last) if first is None else (math.floor(first / HOUR_S) * HOUR_S, last)

    def _hour(self, nodes: Sequence[Node], hour: int, now: float) -> Measured:
        if hour + HOUR_S + SETTLE_S > now:  # not final yet: measured each time
            return measured_in(self._db, nodes, hour, hour + HOUR_S)
        key = (layout(nodes), hour)
        with self._lock:
            kept = self._hours.get(key)
        if kept is None:
            kept = measured_in(self._db, nodes, hour, hour + HOUR_S)
            with self._lock:
                self._hours[key] = kept
                self._forget_old(now)
        return kept

    def _forget_old(self, now: float) -> None:
        oldest = now - KEPT_HOURS * HOUR_S
        for key in [k for k in self._hours if k[1] < oldest]:
            del self._hours[key]

    def warm(
        self, nodes: Sequence[Node], days: int = 31, now: float | None = None, pause_s: float = 0.01
    ) -> int:
        """Measures the final hours of the last `days` that hold data and are not measured
        yet; returns how many. It pauses between hours (measuring is Python work that would
        hold the GIL away from the gateway's event loop for seconds on a large ledger), and
        stops at `close()`."""
        now = time.time() if now is None else now
        last = math.floor((now - SETTLE_S) / HOUR_S) * HOUR_S - HOUR_S  # the last final hour
        first, _ = self._data_hours(now)
        before = len(self._hours)
        for hour in range(max(first, last - (days * 24 - 1) * HOUR_S), last + HOUR_S, HOUR_S):
            if self._closed.is_set():
                break
            with self._lock:
                known = (layout(nodes), hour) in self._hours
            if not known:
                self._hour(nodes, hour, now)
                time.sleep(pause_s)
        return len(self._hours) - before

    def close(self) -> None:
        """Stops a `warm` under way (the server is stopping)."""
        self._closed.set()
