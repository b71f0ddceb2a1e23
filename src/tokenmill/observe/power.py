"""A node's power draw, measured where the hardware allows and estimated, labelled so,
where it does not; and a log of it in the database for energy per token over any period.

Measured: RAPL (CPU packages), NVML (NVIDIA GPUs) and the vendor tools in `power_tools`,
summed, with `basis` naming them. None of these sees fans, memory, disks or power-supply
losses, so a measured figure is a floor of the IT draw. Estimated: with an operator-given
TDP, idle + (TDP - idle) x the machine's CPU utilisation (`core.power.estimated_power`).
"""

import asyncio
import itertools
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from tokenmill.core.periodic import Periodic
from tokenmill.core.power import Power, estimated_power
from tokenmill.observe.power_meters import CpuUtilisation, Meter, NvmlMeter, RaplMeter, Unavailable
from tokenmill.observe.power_tools import tool_meters
from tokenmill.store.tables import PowerSample

log = logging.getLogger(__name__)

KEEP_DAYS = 400  # a year and its month of comparison
_DAY_S = 86_400
_BASIS_MAX = 300  # PowerSample.basis


class PowerSource:
    """Where one node's power comes from: its meters, else an estimate, else nothing."""

    def __init__(
        self,
        meters: Sequence[Meter] = (),
        *,
        tdp_w: float | None = None,
        idle_w: float = 0.0,
        utilisation: Callable[[], float] | None = None,
        utilisation_of: str = "CPU",
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        """`utilisation` (0..1) drives the estimate: the machine's CPUs unless given, e.g. an
        accelerator's busy share with `utilisation_of="GPU"`."""
        if tdp_w is not None:
            estimated_power(tdp_w, 0.0, idle_w)  # refuses a bad TDP or idle floor now
        self.meters = list(meters)
        self.unavailable = dict(unavailable or {})
        self._tdp_w, self._idle_w, self._utilisation_of = tdp_w, idle_w, utilisation_of
        self._utilisation = utilisation
        if utilisation is None and tdp_w is not None:
            self._utilisation = CpuUtilisation()

    @classmethod
    def detect(cls, *, tdp_w: float | None = None, idle_w: float = 0.0) -> "PowerSource":
        """Every meter that works on this machine; `unavailable` says why each other does not."""
        meters: list[Meter] = []
        unavailable: dict[str, str] = {}
        for name, make in (("rapl", RaplMeter), ("nvml", NvmlMeter)):
            try:
                meters.append(make())
            except Unavailable as e:
                unavailable[name] = str(e)
        tools, tool_reasons = tool_meters()
        meters.extend(tools)
        unavailable.update(tool_reasons)
        return cls(meters, tdp_w=tdp_w, idle_w=idle_w, unavailable=unavailable)

    def read(self) -> Power | None:
        """The draw since the previous read. A meter failing this once is left out of this
        reading (and logged); with none left, the estimate if there is a TDP, else None."""
        watts, bases = 0.0, []
        for meter in self.meters:
            try:
                watts += meter.watts()
            except Unavailable as e:
                log.warning("power: %s not read: %s", meter.basis, e)
                continue
            bases.append(meter.basis)
        if bases:
            return Power(watts, False, "measured: " + " + ".join(bases))
        if self._tdp_w is None or self._utilisation is None:
            return None
        estimate = estimated_power(self._tdp_w, self._utilisation(), self._idle_w)
        # One basis for every estimate of this node, whatever the utilisation of the moment.
        return replace(
            estimate,
            basis=f"estimate: idle {self._idle_w:g} W + (TDP {self._tdp_w:g} W - idle)"
            f" x {self._utilisation_of} utilisation",
        )


class PowerLog:
    """Power samples per node in the database, their average over a period, and retention."""

    def __init__(
        self,
        engine: Engine,
        source: PowerSource,
        *,
        keep_days: float = KEEP_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine, self._source, self._clock = engine, source, clock
        self._keep_s = keep_days * _DAY_S
        self._lock = threading.Lock()  # meters keep their previous reading
        self._pruned_at = -math.inf

    def sample(self, node: str) -> Power | None:
        """Read this machine's power now and record it for `node`."""
        with self._lock:
            power = self._source.read()
        if power is not None:
            self.record(node, power, self._clock())
        return power

    def record(self, node: str, power: Power, at: float) -> None:
        """Record a reading taken elsewhere (another node's agent) or earlier."""
        with Session(self._engine) as session, session.begin():
            session.add(
                PowerSample(
                    node=node,
                    at=at,
                    watts=power.watts,
                    estimated=power.estimated,
                    basis=power.basis[:_BASIS_MAX],
                )
            )

    def average_watts(
        self, node: str, since: float, until: float
    ) -> tuple[float, bool, str] | None:
        """Time-weighted average draw of `node` over the samples taken in [since, until], whether
        any of them was an estimate, and their bases; None without samples. A sample holds the
        average since the one before it, so each weighs the time since its predecessor."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(PowerSample.at, PowerSample.watts, PowerSample.estimated, PowerSample.basis)
                .where(PowerSample.node == node, PowerSample.at.between(since, until))
                .order_by(PowerSample.at)
            ).all()
        if not rows:
            return None
        span = rows[-1].at - rows[0].at
        if span > 0:
            joules = sum(r.watts * (r.at - p.at) for p, r in itertools.pairwise(rows))
            watts = joules / span
        else:
            watts = sum(r.watts for r in rows) / len(rows)
        bases = "; ".join(dict.fromkeys(r.basis for r in rows))
        return watts, any(r.estimated for r in rows), bases

    def prune(self, older_than: float) -> int:
        """Delete samples taken before `older_than` (unix s); returns how many."""
        with self._engine.begin() as conn:
            done = conn.execute(delete(PowerSample).where(PowerSample.at < older_than))
        return done.rowcount

    def periodic(self, every_s: float = 60.0, node: str | None = None) -> Periodic:
        """Sample every `every_s` for `node` (this host's name by default) and prune past
        `keep_days` once a day, off the event loop (tools and the database block)."""
        name = node or socket.gethostname()

        async def step() -> None:
            await asyncio.to_thread(self._tick, name)

        return Periodic("power-log", every_s, step)

    def _tick(self, node: str) -> None:
        self.sample(node)
        now = self._clock()
        if now - self._pruned_at >= _DAY_S:
            self.prune(now - self._keep_s)
            self._pruned_at = now
