"""The scheduler's state machine: admission, fair queues per model, placement on replicas.

No clock and no I/O of its own: every call says what time it is. The gateway drives it in real
time (`scheduling.dispatcher`), the simulator in simulated time; both run this same code.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tokenmill.scheduling.fair_queue import FairQueue, TokenCosts
from tokenmill.scheduling.job import Band, Job
from tokenmill.scheduling.rate import DecayingRate
from tokenmill.scheduling.router import Choice, Picker, ReplicaPicker, ReplicaSlot

RATE_WINDOW_S = 10.0  # how far back a band's dispatch rate looks, roughly
MIN_SHARE = 0.02  # below this share of capacity a band's queue is not worth joining
MAX_RETRY_AFTER_S = 60.0
MIN_PREFILL_SAMPLE = 64  # prompt tokens: shorter prefills say more of overheads than of speed


@dataclass(frozen=True)
class Limits:
    queue_per_model: int = 256
    queue_per_tenant: int = 64
    # Below interactive, a band is refused once its model's queue is this full, so batch
    # work is shed first and interactive work keeps the rest of the room.
    shed_fill: Mapping[Band, float] | None = None

    # Fairness a replica may trade for locality: when it frees a slot it takes, among tenants
    # within this many weighted tokens of the most-owed one, the request whose prompt prefix
    # it holds (deficit-longest-prefix-match); 0 is strict VTC order.
    locality_slack: float = 4096.0

    # A request may wait, up to this long, for a busy replica holding more of its prompt than
    # a free one, as long as the wait is shorter than the prefill that replica saves it
    # (estimated from how long prefills have been taking). Not work conserving, but bounded.
    max_hold_s: float = 10.0

    def fill_limit(self, band: Band) -> float:
        defaults = {Band.INTERACTIVE: 1.0, Band.BATCH: 0.5}
        return (self.shed_fill or defaults).get(band, defaults[band])


class Rejected(Exception):
    """Refused at admission: the caller answers 429 with Retry-After."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Dispatch:
    job: Job
    choice: Choice


class _Pool:
    """One model's queue and replicas, how long its requests have been taking, and how often
    each band has been dispatched of late (what a band above leaves to the bands below)."""

    def __init__(
        self, costs: TokenCosts, weights: Mapping[str, float], queue_type: type[FairQueue]
    ) -> None:
        self.queue = queue_type(costs, weights)
        self.replicas: dict[str, ReplicaSlot] = {}
        self.mean_service_s: float | None = None  # EWMA of dispatch -> finish
        self.prefill_s_per_token: float | None = None  # EWMA of dispatch -> first token
        self.wake_at: float | None = None  # when a job held for its replica stops waiting
        self.dispatch_rate = {band: DecayingRate(RATE_WINDOW_S) for band in Band}

    def capacity(self) -> int:
        return sum(r.capacity for r in self.replicas.values() if r.healthy)

    def observe_service(self, seconds: float) -> None:
        prev = self.mean_service_s
        self.mean_service_s = seconds if prev is None else 0.8 * prev + 0.2 * seconds

    def observe_prefill(self, seconds: float, tokens: int) -> None:
        rate = seconds / tokens
        prev = self.prefill_s_per_token
        self.prefill_s_per_token = rate if prev is None else 0.8 * prev + 0.2 * rate

    def share_left(self, band: Band, now: float) -> float:
        """The fraction of capacity the bands above `band` have been leaving free of late."""
        capacity = self.capacity()
        if self.mean_service_s is None or not capacity:
            return 1.0
        above = sum(self.dispatch_rate[b].at(now) for b in Band if b < band)
        return max(0.0, 1.0 - above * self.mean_service_s / capacity)


class SchedulerCore:
    def __init__(
        self,
        limits: Limits | None = None,
        costs: TokenCosts | None = None,
        picker: Picker | None = None,
        weights: Mapping[str, float] | None = None,
        queue_type: type[FairQueue] = FairQueue,
    ) -> None:
        self.limits = limits or Limits()
        self._queue_type = queue_type  # FcfsQueue: the baseline that fairness is measured against
        self.costs = costs or TokenCosts()
        self.picker: Picker = picker or ReplicaPicker()
        self._weights = dict(weights or {})
        self._pools: dict[str, _Pool] = {}
        self._running: dict[str, tuple[Job, ReplicaSlot, float]] = {}  # job id -> placement
        self._first_token: dict[str, float] = {}  # job id -> seconds from dispatch

    def pool(self, model: str) -> _Pool:
        pool = self._pools.get(model)
        if pool is None:
            pool = self._pools[model] = _Pool(self.costs, self._weights, self._queue_type)
        return pool

    def update_replicas(self, model: str, slots: Sequence[ReplicaSlot]) -> None:
        """Replace the model's replica set, keeping what is known of replicas that stay."""
        pool = self.pool(model)
        kept: dict[str, ReplicaSlot] = {}
        for slot in slots:
            old = pool.replicas.get(slot.id)
            if old is not None:
                old.healthy, old.capacity = slot.healthy, slot.capacity
                slot = old
            kept[slot.id] = slot
        pool.replicas = kept

    def mark_unhealthy(self, model: str, replica_id: str) -> None:
        """Passive health: a replica that failed a request gets no more until the next
        `update_replicas` (its supervisor's next health check) says otherwise."""
        slot = self.pool(model).replicas.get(replica_id)
        if slot is not None:
            slot.healthy = False

    def submit(self, job: Job, now: float, readmit: bool = False) -> Dispatch | None:
        """Place a job at once if nobody waits and a replica is free; else queue it, or raise
        `Rejected` when there is no room or no time for it. A job readmitted after its replica
        failed it was admitted once already: it only queues, first of its tenant's."""
        pool = self.pool(job.model)
        queue = pool.queue
        if readmit:
            queue.requeue(job)  # uncharged; the next `dispatch` places it if a slot is free
            return None
        if not len(queue):
            replicas = list(pool.replicas.values())
            choice = self.picker.pick(job, replicas)
            if choice is not None and not self._holds(pool, job, choice, replicas, now):
                queue.serve_now(job)
                return self._place(job, choice, now)
        limit = self.limits.queue_per_model * self.limits.fill_limit(job.band)
        if len(queue) >= limit:
            retry = self._retry_after(pool, job, now)
            raise Rejected(f"the queue for '{job.model}' is full", retry)
        if queue.queued(job.tenant) >= self.limits.queue_per_tenant:
            retry = self._retry_after(pool, job, now)
            raise Rejected("too many of your requests are waiting", retry)
        wait = self.predicted_wait(pool, job, now)
        if wait is not None and now + wait > job.deadline:
            retry = self._retry_after(pool, job, now)
            if math.isinf(wait):
                raise Rejected("higher-priority requests are taking all capacity", retry)
            raise Rejected(
                f"the predicted wait ({wait:.1f}s) exceeds the request's deadline", retry
            )
        queue.push(job)
        return None

    def predicted_wait(self, pool: _Pool, job: Job, now: float) -> float | None:
        """Seconds until a new job would be dispatched, if there is history: behind the jobs
        its queue would serve first, at the capacity the bands above leave its band."""
        ahead = pool.queue.ahead_of(job)
        free = sum(r.capacity - r.in_flight for r in pool.replicas.values() if r.free)
        if ahead < free:
            return 0.0
        capacity = pool.capacity()
        if pool.mean_service_s is None or capacity == 0:
            return None
        share = pool.share_left(job.band, now)
        if share < MIN_SHARE:
            return math.inf  # the bands above take it all
        return (ahead - free + 1) * pool.mean_service_s / (capacity * share)

    def _retry_after(self, pool: _Pool, job: Job, now: float) -> float:
        wait = self.predicted_wait(pool, job, now)
        if wait is None:
            return 1.0
        return float(max(1, math.ceil(min(wait, MAX_RETRY_AFTER_S))))

    def dispatch(self, now: float, model: str | None = None) -> list[Dispatch]:
        """Place as many queued jobs as free capacity allows (work conserving): each time the
        near-fair head job with the longest cached prefix on the replica it would get."""
        placed: list[Dispatch] = []
        pools = [self.pool(model)] if model is not None else list(self._pools.values())
        for pool in pools:
            pool.wake_at = None
            while len(pool.queue):
                best: tuple[Job, Choice] | None = None
                replicas = list(pool.replicas.values())
                for job in pool.queue.near_fair_heads(self.limits.locality_slack):
                    choice = self.picker.pick(job, replicas)
                    if choice is None:
                        break  # no free replica for anyone
                    if self._holds(pool, job, choice, replicas, now):
                        continue
                    if best is None or choice.matched_blocks > best[1].matched_blocks:
                        best = (job, choice)
                if best is None:
                    break  # the head waits for a free replica
                pool.queue.take(best[0])
                placed.append(self._place(best[0], best[1], now))
        return placed

    def _holds(
        self, pool: _Pool, job: Job, choice: Choice, replicas: list[ReplicaSlot], now: float
    ) -> bool:
        """Should the job wait for a busy replica that holds more of its prompt than the
        chosen free one? Yes while it has waited less than the prefill that would save."""
        rate = pool.prefill_s_per_token
        if rate is None or not job.prefix_blocks:
            return False
        extra = self.picker.best_match(job, replicas) - choice.matched_blocks
        if extra <= 0:
            return False
        saved_s = extra * job.input_tokens / len(job.prefix_blocks) * rate
        until = job.arrived + min(self.limits.max_hold_s, saved_s)
        if now >= until:
            return False
        pool.wake_at = until if pool.wake_at is None else min(pool.wake_at, until)
        return True

    def wake_at(self, model: str) -> float | None:
        """When a job now held for its replica must be looked at again, if any is."""
        return self.pool(model).wake_at

    def _place(self, job: Job, choice: Choice, now: float) -> Dispatch:
        slot = choice.replica
        slot.in_flight += 1
        slot.outstanding_tokens += job.input_tokens + job.max_output_tokens
        slot.index.insert(job.prefix_blocks)
        self.pool(job.model).dispatch_rate[job.band].add(now)
        self._running[job.id] = (job, slot, now)
        return Dispatch(job, choice)

    def cancel(self, job: Job) -> bool:
        """Drop a queued job (client gone, deadline passed); it was never charged."""
        return self.pool(job.model).queue.remove(job)

    def on_output(self, job: Job, tokens: int) -> None:
        """Output tokens streamed so far (cumulative): the tenant is charged as they come."""
        new = tokens - job.output_charged
        if new > 0:
            self.pool(job.model).queue.charge_output(job.tenant, new)
            job.output_charged = tokens

    def on_first_token(self, job: Job, now: float) -> None:
        placed = self._running.get(job.id)
        if placed is not None:
            self._first_token.setdefault(job.id, now - placed[2])

    def on_prompt_counted(self, job: Job, prompt_tokens: int, cached_tokens: int) -> None:
        pool = self.pool(job.model)
        pool.queue.correct_input(job.tenant, job.input_tokens, prompt_tokens, cached_tokens)
        first = self._first_token.pop(job.id, None)
        prefilled = prompt_tokens - cached_tokens
        if first is not None and prefilled >= MIN_PREFILL_SAMPLE:
            pool.observe_prefill(first, prefilled)

    def finish(self, job: Job, now: float, served: bool = True) -> None:
        """The job's slot is free again. One its engine never served (the attempt got no answer)
        says nothing of how long service takes: were it counted, a crash's failed attempts
        would shrink the predicted waits, and admission let in requests that cannot be served
        before their deadline (they would wait it out and get a 429 anyway)."""
        placed = self._running.pop(job.id, None)
        self._first_token.pop(job.id, None)
        if placed is None:
            return
        _, slot, started = placed
        slot.in_flight -= 1
        slot.outstanding_tokens -= job.input_tokens + job.max_output_tokens
        if served:
            self.pool(job.model).observe_service(now - started)

    def queue_depths(self) -> dict[str, int]:
        return {model: len(pool.queue) for model, pool in self._pools.items()}

    def in_flight(self, model: str) -> dict[str, int]:
        """Requests each of the model's replicas is serving now."""
        return {r.id: r.in_flight for r in self.pool(model).replicas.values()}

    def set_weight(self, tenant: str, weight: float) -> None:
        """A tenant's new fairness weight, in every model's queue and in those made later.
        Counters already kept stay as they are (see `FairQueue.set_weight`)."""
        if weight <= 0:  # checked here too: with no queue yet, none would check it
            raise ValueError("a tenant's weight must be positive")
        self._weights[tenant] = weight
        for pool in self._pools.values():
            pool.queue.set_weight(tenant, weight)
