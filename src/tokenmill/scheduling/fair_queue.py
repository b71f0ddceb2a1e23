"""Weighted Virtual Token Counter (Sheng et al., "Fairness in Serving Large Language Models",
OSDI 2024) under strict priority bands, FCFS within a tenant.

Each tenant has a counter of the service it received, in weighted tokens divided by its weight.
The next job comes from the highest non-empty band, from the backlogged tenant with the smallest
counter. A tenant that becomes backlogged again has its counter lifted to the smallest counter
among those already waiting (or, with none waiting, to the last served tenant's), so idle time
cannot be saved up and spent as a burst that starves the others.
"""

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from tokenmill.scheduling.job import Band, Job

_BANDS = tuple(Band)  # highest first; iterating the Enum class itself is slow on a hot path


@dataclass(frozen=True)
class TokenCosts:
    """Service cost of tokens: output costs more than input (defaults 1:2); cached input less."""

    input: float = 1.0
    output: float = 2.0
    cached_input: float = 0.25

    def of_input(self, tokens: int, cached: int = 0) -> float:
        cached = min(cached, tokens)
        return self.input * (tokens - cached) + self.cached_input * cached

    def of_output(self, tokens: int) -> float:
        return self.output * tokens


class FairQueue:
    def __init__(
        self, costs: TokenCosts | None = None, weights: Mapping[str, float] | None = None
    ) -> None:
        self.costs = costs or TokenCosts()
        self._weights = dict(weights or {})
        if any(w <= 0 for w in self._weights.values()):
            raise ValueError("a tenant's weight must be positive")
        self._counters: dict[str, float] = {}
        self._queues: dict[Band, dict[str, deque[Job]]] = {band: {} for band in _BANDS}
        self._waiting: dict[str, int] = {}  # tenant -> queued jobs across bands
        self._last_served: str | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, 1.0)

    def counter(self, tenant: str) -> float:
        return self._counters.get(tenant, 0.0)

    def backlogged(self) -> list[str]:
        return list(self._waiting)

    def queued(self, tenant: str) -> int:
        return self._waiting.get(tenant, 0)

    def ahead_of(self, job: Job) -> int:
        """About how many queued jobs a new `job` would wait behind: every job of the bands
        above; in its own band, its tenant's, and of every other tenant as many as that
        tenant's weight earns it in the turns until this job's (jobs taken as equal in size)."""
        ahead = sum(len(q) for b in _BANDS if b < job.band for q in self._queues[b].values())
        tenants = self._queues[job.band]
        mine = len(tenants.get(job.tenant, ()))
        turns = (mine + 1) / self.weight(job.tenant)
        for tenant, queue in tenants.items():
            share = len(queue) if tenant == job.tenant else math.ceil(turns * self.weight(tenant))
            ahead += min(len(queue), share)
        return ahead

    def push(self, job: Job) -> None:
        if job.tenant not in self._waiting:
            self._lift(job.tenant)
        self._queues[job.band].setdefault(job.tenant, deque()).append(job)
        self._waiting[job.tenant] = self._waiting.get(job.tenant, 0) + 1
        self._size += 1

    def requeue(self, job: Job) -> None:
        """A job whose dispatch reached no engine (its replica died under it): back to the head
        of its tenant's queue, where it was admitted before all behind it and has the nearest
        deadline, and the input charged for that dispatch given back: it is charged when served.
        Not lifted as a newly backlogged tenant is: it was not idle, its request never left."""
        self._charge(job.tenant, -self.costs.of_input(job.input_tokens))
        self._queues[job.band].setdefault(job.tenant, deque()).appendleft(job)
        self._waiting[job.tenant] = self._waiting.get(job.tenant, 0) + 1
        self._size += 1

    def _lift(self, tenant: str) -> None:
        if self._waiting:
            floor = min(self.counter(t) for t in self._waiting)
        elif self._last_served is not None:
            floor = self.counter(self._last_served)
        else:
            floor = 0.0
        self._counters[tenant] = max(self.counter(tenant), floor)

    def peek(self) -> Job | None:
        if not self._size:
            return None
        for band in _BANDS:
            tenants = self._queues[band]
            if tenants:
                tenant = min(tenants, key=self.counter)
                return tenants[tenant][0]
        return None

    def near_fair_heads(self, slack: float) -> list[Job]:
        """The first job of every tenant in the highest waiting band whose counter is within
        `slack` of the smallest there, most owed first: the jobs that may go next without
        the service gap growing by more than `slack`."""
        for band in _BANDS:
            tenants = self._queues[band]
            if tenants:
                floor = min(self.counter(t) for t in tenants)
                near = sorted((t for t in tenants if self.counter(t) <= floor + slack),
                              key=self.counter)  # fmt: skip
                return [tenants[t][0] for t in near]
        return []

    def take(self, job: Job) -> None:
        """Serve this queued job now (it must be one of `near_fair_heads`)."""
        if not self.remove(job):
            raise ValueError(f"job {job.id} is not queued")
        self._serve(job)

    def pop(self) -> Job | None:
        """The next job to serve, charged its input at dispatch."""
        job = self.peek()
        if job is not None:
            self.remove(job)
            self._serve(job)
        return job

    def serve_now(self, job: Job) -> None:
        """Serve a job that never waited (nothing was queued): as a push and a pop would."""
        if job.tenant not in self._waiting:
            self._lift(job.tenant)
        self._serve(job)

    def _serve(self, job: Job) -> None:
        self.charge_input(job.tenant, job.input_tokens)
        self._last_served = job.tenant

    def remove(self, job: Job) -> bool:
        """Take a queued job out (its client left, or its deadline passed): nothing is charged."""
        tenants = self._queues[job.band]
        queue = tenants.get(job.tenant)
        if queue is None or job not in queue:
            return False
        queue.remove(job)
        if not queue:
            del tenants[job.tenant]
        left = self._waiting[job.tenant] - 1
        if left:
            self._waiting[job.tenant] = left
        else:
            del self._waiting[job.tenant]
        self._size -= 1
        return True

    def charge_input(self, tenant: str, tokens: int, cached: int = 0) -> None:
        self._charge(tenant, self.costs.of_input(tokens, cached))

    def charge_output(self, tenant: str, tokens: int) -> None:
        self._charge(tenant, self.costs.of_output(tokens))

    def correct_input(self, tenant: str, estimated: int, actual: int, cached: int) -> None:
        """Replace the input estimate charged at dispatch with the engine's own count."""
        delta = self.costs.of_input(actual, cached) - self.costs.of_input(estimated)
        self._charge(tenant, delta)

    def _charge(self, tenant: str, cost: float) -> None:
        self._counters[tenant] = self.counter(tenant) + cost / self.weight(tenant)

    def set_weight(self, tenant: str, weight: float) -> None:
        """Weigh the tenant's service by `weight` from now on. Its counter stays: counters are
        in normalised units (service / weight), so what it got so far keeps its old weighting."""
        if weight <= 0:
            raise ValueError("a tenant's weight must be positive")
        self._weights[tenant] = weight


class FcfsQueue(FairQueue):
    """First come, first served across tenants (bands still strict): the baseline VTC is
    measured against. Counters are kept all the same, so the service gap can be compared."""

    def peek(self) -> Job | None:
        heads = self.near_fair_heads(0.0)
        return heads[0] if heads else None

    def ahead_of(self, job: Job) -> int:
        return sum(len(q) for b in _BANDS if b <= job.band for q in self._queues[b].values())

    def near_fair_heads(self, slack: float) -> list[Job]:
        for band in _BANDS:
            tenants = self._queues[band]
            if tenants:
                return [min((q[0] for q in tenants.values()), key=lambda job: job.arrived)]
        return []
