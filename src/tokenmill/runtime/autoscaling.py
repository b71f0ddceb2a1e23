"""The autoscaler at work: every tick, each deployment with a replica range is sized from its
queue and slots (`scheduling.autoscale` decides), and replicas scaled away are stopped once
they have finished what they were serving (or after DRAIN_MAX_S, so no stop waits forever)."""

import logging
import time
from dataclasses import dataclass

from tokenmill.core.periodic import Periodic
from tokenmill.runtime.deployments import DeploymentRuntime, Deployments
from tokenmill.runtime.replica import ReplicaState
from tokenmill.scheduling.autoscale import Autoscaler, ScalePolicy, ScaleSignals
from tokenmill.scheduling.core import SchedulerCore

log = logging.getLogger(__name__)

DRAIN_MAX_S = 120.0


@dataclass(frozen=True)
class ScaleTiming:
    up_after_s: float = 10.0
    down_after_s: float = 120.0
    zero_after_s: float = 300.0


class AutoscaleLoop:
    def __init__(
        self,
        deployments: Deployments,
        core: SchedulerCore,
        timing: ScaleTiming,
        tick_s: float = 1.0,
    ) -> None:
        self._deployments = deployments
        self._core = core
        self._timing = timing
        self._scalers: dict[str, Autoscaler] = {}
        self._draining_since: dict[str, float] = {}  # replica id -> when it began to drain
        self._loop = Periodic("autoscaler", tick_s, lambda: self.tick(time.monotonic()))

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def tick(self, now: float) -> None:
        for runtime in self._deployments.runtimes():
            if not runtime.rolling_out():  # a rollout runs one replica over, on purpose
                self._size(runtime, now)
            await self._retire_drained(runtime, now)

    def _size(self, runtime: DeploymentRuntime, now: float) -> None:
        row = runtime.row
        t = self._timing
        policy = ScalePolicy(row.min_replicas, row.max_replicas, t.up_after_s, t.down_after_s,
                             t.zero_after_s)  # fmt: skip
        scaler = self._scalers.get(row.name)
        if scaler is None or scaler.policy != policy:
            scaler = self._scalers[row.name] = Autoscaler(policy)
        active = runtime.active()
        in_flight = self._core.in_flight(row.name)
        signals = ScaleSignals(
            replicas=len(active),
            starting=sum(r.state is not ReplicaState.READY for r in active),
            queued=self._core.queue_depths().get(row.name, 0),
            in_flight=sum(in_flight.get(r.id, 0) for r in active),
            slots_per_replica=runtime.adapter.parallel(runtime.row_spec()),
        )
        target = scaler.decide(now, signals)
        if target != len(active):
            log.info("autoscale %s: %d -> %d replicas (queued %d, in flight %d)",
                     row.name, len(active), target, signals.queued, signals.in_flight)  # fmt: skip
            self._deployments.scale(row.name, target)

    async def _retire_drained(self, runtime: DeploymentRuntime, now: float) -> None:
        in_flight = self._core.in_flight(runtime.row.name)
        for replica in runtime.replicas:
            if not replica.draining:
                continue
            since = self._draining_since.setdefault(replica.id, now)
            if in_flight.get(replica.id, 0) == 0 or now - since > DRAIN_MAX_S:
                del self._draining_since[replica.id]
                await self._deployments.retire(runtime.row.name, replica.id)
