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


class Dispatcher:
    def __init__(self, core: SchedulerCore, clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self._clock = clock
        self._waiting: dict[str, asyncio.Future[Choice]] = {}
        self._placed: dict[str, Choice] = {}  # placed in a pump before their waiter ran

    async def acquire(
        self,
        job: Job,
        client_gone: Callable[[], Awaitable[None]] | None = None,
        readmit: bool = False,
    ) -> Choice:
        """Wait for a replica slot; raises `Rejected` when refused or out of time, `Abandoned`
        when `client_gone()` completes first (watched only if the job has to wait)."""
        self.core.submit(job, self._clock(), readmit)
        self._pump(job.model)
        choice = self._placed.pop(job.id, None)
        if choice is not None:  # free capacity: no wait, no future
            return choice
        fut: asyncio.Future[Choice] = asyncio.get_running_loop().create_future()
        self._waiting[job.id] = fut
        gone = asyncio.ensure_future(client_gone()) if client_gone is not None else None
        try:
            async with asyncio.timeout(max(0.0, job.deadline - self._clock())):
                if gone is not None:
                    await asyncio.wait((fut, gone), return_when=asyncio.FIRST_COMPLETED)
                    if not fut.done():
                        raise Abandoned(job.id)
                return await fut
        except Abandoned:
            self._abandon(job)
            raise
        except TimeoutError:
            self._abandon(job)
            raise Rejected(
                "no replica became free before the request's deadline", retry_after_s=1.0
            ) from None
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        finally:
            self._waiting.pop(job.id, None)
            if gone is not None:
                gone.cancel()

    def _abandon(self, job: Job) -> None:
        if not self.core.cancel(job):  # placed in the meantime: hand the slot back
            self.release(job)

    def release(self, job: Job) -> None:
        self.core.finish(job, self._clock())
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
