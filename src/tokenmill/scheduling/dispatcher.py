"""The scheduler core driven in real time, for the gateway: a request awaits its turn.

Every wait is bounded by the job's deadline; a request cancelled while queued (its client left)
leaves the queue uncharged, and one cancelled just after it was placed gives its slot back.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from tokenmill.scheduling.core import Rejected, SchedulerCore
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.router import Choice, ReplicaSlot


class Abandoned(Exception):
    """The client went away while its request was queued."""


WATCH_AFTER_S = 0.05  # a wait shorter than this is not worth a task watching the client


class _Waiter:
    """A queued job's future, failed by its deadline or, once it has waited WATCH_AFTER_S,
    by its client going away. Timers rather than `asyncio.wait`/`timeout`: at saturation most
    requests queue briefly, and those cost a task and several futures each."""

    def __init__(self, timeout_s: float, client_gone: Callable[[], Awaitable[None]] | None) -> None:
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Choice] = loop.create_future()
        self._client_gone = client_gone
        self._watch: asyncio.Future[None] | None = None
        self._timers = [loop.call_later(timeout_s, self._fail, _late)]
        if client_gone is not None and timeout_s > WATCH_AFTER_S:
            self._timers.append(loop.call_later(WATCH_AFTER_S, self._start_watch))

    def _fail(self, error: Callable[[], Exception]) -> None:
        if not self.future.done():
            self.future.set_exception(error())

    def _start_watch(self) -> None:
        assert self._client_gone is not None
        self._watch = asyncio.ensure_future(self._client_gone())
        self._watch.add_done_callback(lambda w: None if w.cancelled() else self._fail(Abandoned))

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._watch is not None:
            self._watch.cancel()


def _late() -> Rejected:
    return Rejected("no replica became free before the request's deadline", retry_after_s=1.0)


class Dispatcher:
    def __init__(self, core: SchedulerCore, clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self._clock = clock
        self._waiting: dict[str, asyncio.Future[Choice]] = {}
        self._placed: dict[str, Choice] = {}  # placed in a pump before their waiter ran
        self._wakes: dict[str, tuple[float, asyncio.TimerHandle]] = {}  # model -> next pump

    async def acquire(
        self,
        job: Job,
        client_gone: Callable[[], Awaitable[None]] | None = None,
        readmit: bool = False,
    ) -> Choice:
        """Wait for a replica slot; raises `Rejected` when refused or out of time, `Abandoned`
        when `client_gone()` completes first (watched only if the job waits a while)."""
        placed = self.core.submit(job, self._clock(), readmit)
        if placed is not None:  # free capacity, nobody waiting: the common case, no future
            return placed.choice
        self._pump(job.model)
        choice = self._placed.pop(job.id, None)
        if choice is not None:
            return choice
        waiter = _Waiter(max(0.0, job.deadline - self._clock()), client_gone)
        self._waiting[job.id] = waiter.future
        try:
            return await waiter.future
        except (Rejected, Abandoned, asyncio.CancelledError):
            self._abandon(job)
            raise
        finally:
            self._waiting.pop(job.id, None)
            waiter.close()

    def _abandon(self, job: Job) -> None:
        if not self.core.cancel(job):  # placed in the meantime: hand the slot back
            self.release(job)

    def first_token(self, job: Job) -> None:
        self.core.on_first_token(job, self._clock())

    def release(self, job: Job) -> None:
        self.core.finish(job, self._clock())
        self._pump(job.model)

    def fail(self, job: Job, replica_id: str) -> None:
        """An attempt that got no answer from its replica (refused, reset: the engine died).
        The replica is taken out first, until its supervisor next says it is ready, and only
        then is the slot given back: the requests waiting are not handed to the engine that
        just failed, each to lose an attempt there; and the attempt, never served, teaches
        nothing of how long service takes. The caller readmits the job (`acquire(readmit=
        True)`): it waits first of its tenant's, for this replica's replacement or another."""
        self.core.mark_unhealthy(job.model, replica_id)
        self.core.finish(job, self._clock(), served=False)
        self._pump(job.model)

    def update_replicas(self, model: str, slots: Sequence[ReplicaSlot]) -> None:
        self.core.update_replicas(model, slots)
        self._pump(model)

    def _pump(self, model: str) -> None:
        for placed in self.core.dispatch(self._clock(), model):
            fut = self._waiting.get(placed.job.id)
            if fut is None:
                self._placed[placed.job.id] = placed.choice
            elif not fut.done():
                fut.set_result(placed.choice)
        wake = self.core.wake_at(model)
        if wake is not None:
            self._wake(model, wake)

    def _wake(self, model: str, at: float) -> None:
        """Pump again at `at`, when a job held for its replica stops waiting for it, unless
        an earlier pump is already due."""
        due = self._wakes.get(model)
        if due is not None and due[0] <= at and not due[1].cancelled():
            return
        if due is not None:
            due[1].cancel()
        delay = max(0.0, at - self._clock())
        handle = asyncio.get_running_loop().call_later(delay, self._woken, model)
        self._wakes[model] = (at, handle)

    def _woken(self, model: str) -> None:
        self._wakes.pop(model, None)
        self._pump(model)
