"""Replica choice: filter (healthy, free capacity), then score prefix affinity against load,
with an imbalance guard that falls back to the least-loaded replica when the favourite runs hot.
Every choice says why (`Choice.explain`), for a debug header or a log line.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tokenmill.scheduling.job import Job
from tokenmill.scheduling.prefix import PrefixIndex


@dataclass
class ReplicaSlot:
    """The router's view of one replica; the scheduler keeps `in_flight` and the index."""

    id: str
    capacity: int  # requests it serves at once (the engine's parallel slots)
    cache_blocks: int  # prefix blocks its cache holds, to size the index
    healthy: bool = True
    in_flight: int = 0
    outstanding_tokens: int = 0  # prompt + max output of what it is serving now
    index: PrefixIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = PrefixIndex(self.cache_blocks)

    @property
    def free(self) -> bool:
        return self.healthy and self.in_flight < self.capacity

    @property
    def load(self) -> float:
        return self.in_flight / self.capacity


@dataclass(frozen=True)
class Choice:
    replica: ReplicaSlot
    reason: str  # "affinity", "least-loaded" or "imbalance"
    matched_blocks: int
    scores: dict[str, float]

    def explain(self) -> str:
        scores = " ".join(f"{rid}={s:.2f}" for rid, s in self.scores.items())
        return f"{self.replica.id} by {self.reason} (prefix blocks {self.matched_blocks}; {scores})"


class Picker(Protocol):
    def pick(self, job: Job, replicas: Sequence[ReplicaSlot]) -> Choice | None: ...

    def best_match(self, job: Job, replicas: Sequence[ReplicaSlot]) -> int:
        """The most prefix blocks any healthy replica holds, free or not (0: blind)."""
        ...


@dataclass(frozen=True)
class ReplicaPicker:
    affinity_weight: float = 1.0
    load_weight: float = 1.0
    # The favourite may run at most this much more loaded (fraction of capacity) than the
    # least-loaded replica before affinity gives way to balance.
    max_imbalance: float = 0.5

    def pick(self, job: Job, replicas: Sequence[ReplicaSlot]) -> Choice | None:
        free = [r for r in replicas if r.free]
        if not free:
            return None
        if job.avoid:
            free = [r for r in free if r.id not in job.avoid] or free
        # Among equally loaded replicas, the one caching least: a new prefix goes where it
        # evicts the least, so distinct prefixes spread over the pool instead of piling up.
        least = min(free, key=lambda r: (r.load, r.outstanding_tokens, len(r.index)))
        blocks = job.prefix_blocks
        matched = {r.id: r.index.match(blocks) for r in free}
        if not blocks or not any(matched.values()):
            scores = {r.id: -self.load_weight * r.load for r in free}
            return Choice(least, "least-loaded", matched[least.id], scores)
        scores = {
            r.id: self.affinity_weight * matched[r.id] / len(blocks) - self.load_weight * r.load
            for r in free
        }
        best = max(free, key=lambda r: (scores[r.id], -r.outstanding_tokens))
        if best.load - least.load > self.max_imbalance:
            return Choice(least, "imbalance", matched[least.id], scores)
        return Choice(best, "affinity", matched[best.id], scores)

    def best_match(self, job: Job, replicas: Sequence[ReplicaSlot]) -> int:
        blocks = job.prefix_blocks
        return max((r.index.match(blocks) for r in replicas if r.healthy), default=0)


class RoundRobinPicker:
    """The baseline: free replicas in turn, blind to prefixes and load (it reports no prefix
    match, so the scheduler's locality-aware choice of the next job stays off too)."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def pick(self, job: Job, replicas: Sequence[ReplicaSlot]) -> Choice | None:
        free = [r for r in replicas if r.free]
        if not free:
            return None
        slot = free[next(self._turn) % len(free)]
        return Choice(slot, "round-robin", 0, {})  # blind to prefixes, also when choosing jobs

    def best_match(self, job: Job, replicas: Sequence[ReplicaSlot]) -> int:
        return 0  # blind: never waits for a replica
