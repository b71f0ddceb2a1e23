"""How many replicas a deployment should run, from what its queue and slots show over time.

Up by one when requests have queued for a sustained while (and nothing is already starting),
down by one when one replica fewer would have been at most half busy for a sustained while, to
zero (where allowed) after a longer idle, and from zero at once when a request arrives: it waits
for the cold start instead of failing. No clock of its own, like the rest of `scheduling`: the
gateway and the simulator say what time it is.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ScalePolicy:
    min_replicas: int
    max_replicas: int
    up_after_s: float = 10.0
    down_after_s: float = 120.0
    zero_after_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("replicas: need 0 <= min <= max")


@dataclass(frozen=True)
class ScaleSignals:
    """One deployment at one moment."""

    replicas: int  # running or starting (draining ones not counted)
    starting: int  # of those, not yet ready
    queued: int  # requests waiting in the gateway
    in_flight: int  # requests being served
    slots_per_replica: int  # requests one replica serves at once


class Autoscaler:
    """Remembers, for one deployment, since when it has been queueing and since when it has
    had a replica to spare; `decide` returns the replica count it should run now."""

    def __init__(self, policy: ScalePolicy) -> None:
        self.policy = policy
        self._queueing_since: float | None = None
        self._spare_since: float | None = None

    def decide(self, now: float, s: ScaleSignals) -> int:
        p = self.policy
        if s.replicas < p.min_replicas or s.replicas > p.max_replicas:
            return min(max(s.replicas, p.min_replicas), p.max_replicas)
        if s.replicas == 0:
            return 1 if s.queued and p.max_replicas else 0  # cold start: nobody else can serve
        self._queueing_since = _since(self._queueing_since, now, s.queued > 0)
        spare = s.queued == 0 and s.in_flight <= 0.5 * (s.replicas - 1) * s.slots_per_replica
        self._spare_since = _since(self._spare_since, now, spare)
        queueing = self._held(self._queueing_since, now, p.up_after_s)
        if queueing and s.replicas < p.max_replicas and not s.starting:
            self._queueing_since = now  # the next step up waits its own while
            return s.replicas + 1
        linger = p.down_after_s if s.replicas > 1 else p.zero_after_s
        if s.replicas > p.min_replicas and self._held(self._spare_since, now, linger):
            self._spare_since = now
            return s.replicas - 1
        return s.replicas

    @staticmethod
    def _held(since: float | None, now: float, seconds: float) -> bool:
        return since is not None and now - since >= seconds


def _since(since: float | None, now: float, condition: bool) -> float | None:
    """When a condition that holds now began to hold (None when it does not hold)."""
    if not condition:
        return None
    return now if since is None else since
