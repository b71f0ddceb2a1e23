"""An engine dies under queued requests (issue 14, finding 7): the waiting requests are not
handed to the dead engine, and go to its replacement the moment it is ready, those the crash
cut off first. Dispatcher level, real time, no engine (tests/test_engine_kill.py: the same with
the real engine)."""

import asyncio
import itertools
import time

from tokenmill.scheduling.core import SchedulerCore
from tokenmill.scheduling.dispatcher import Dispatcher
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.router import ReplicaSlot

_ids = itertools.count()


def job(tenant: str = "a", wait_s: float = 30.0) -> Job:
    now = time.monotonic()
    return Job(id=f"c{next(_ids)}", tenant=tenant, model="m", input_tokens=10,
               max_output_tokens=10, arrived=now, deadline=now + wait_s)  # fmt: skip


def replica(healthy: bool, capacity: int = 1) -> list[ReplicaSlot]:
    """What the gateway tells the dispatcher of the model's one replica (its id survives the
    engine's restart: the supervisor restarts the same replica)."""
    return [ReplicaSlot("r0", capacity=capacity, cache_blocks=8, healthy=healthy)]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_waiting_requests_are_not_handed_to_the_engine_that_just_failed():
    d = Dispatcher(SchedulerCore())
    d.update_replicas("m", replica(healthy=True))
    cut_off = job()
    await d.acquire(cut_off)
    waiting = asyncio.create_task(d.acquire(job()))
    await settle()
    d.fail(cut_off, "r0")  # its engine was killed: the request got no answer
    await settle()
    assert not waiting.done()  # not placed on the dead engine, to fail there too
    slot = d.core.pool("m").replicas["r0"]
    assert slot.in_flight == 0 and not slot.healthy
    waiting.cancel()


async def test_queued_requests_go_to_the_replacement_as_soon_as_it_is_ready():
    d = Dispatcher(SchedulerCore())
    d.update_replicas("m", replica(healthy=True, capacity=2))
    cut_off = [job(), job()]
    for j in cut_off:
        await d.acquire(j)
    queued = [asyncio.create_task(d.acquire(job())) for _ in range(4)]
    await settle()
    for j in cut_off:
        d.fail(j, "r0")
    retried = [asyncio.create_task(d.acquire(j, readmit=True)) for j in cut_off]
    d.update_replicas("m", replica(healthy=False, capacity=2))  # restarting, then starting
    await settle()
    assert not any(t.done() for t in retried + queued)
    ready_at = time.monotonic()
    d.update_replicas("m", replica(healthy=True, capacity=2))  # the replacement is ready
    await settle()
    # At once (no timer, no health-check period), and the two the crash cut off come first:
    # they were admitted before the rest and have the nearest deadlines.
    assert all(t.done() for t in retried) and not any(t.done() for t in queued)
    assert time.monotonic() - ready_at < 0.05
    for j in cut_off:
        d.release(j)
    await settle()
    assert sum(t.done() for t in queued) == 2  # then the queue, as slots free up
    for t in queued:
        t.cancel()


async def test_a_readmitted_request_is_served_before_those_queued_behind_it():
    """The gateway's path today: the slot released, the replica marked down, the job readmitted.
    Readmitted jobs went to the back of the queue, behind requests that arrived after them, and
    so were the first to run out of queue time on a busy replacement."""
    d = Dispatcher(SchedulerCore())
    d.update_replicas("m", replica(healthy=True))
    first = job()
    await d.acquire(first)
    later = asyncio.create_task(d.acquire(job()))
    await settle()
    d.core.mark_unhealthy("m", "r0")
    d.release(first)
    retry = asyncio.create_task(d.acquire(first, readmit=True))
    await settle()
    d.update_replicas("m", replica(healthy=True))
    await settle()
    assert retry.done() and not later.done()
    later.cancel()


async def test_an_attempt_that_got_no_answer_neither_counts_as_service_nor_is_charged():
    core = SchedulerCore()
    d = Dispatcher(core)
    d.update_replicas("m", replica(healthy=True))
    served = job()
    await d.acquire(served)
    await asyncio.sleep(0.05)
    d.release(served)
    pool = core.pool("m")
    mean, counter = pool.mean_service_s, pool.queue.counter("a")
    assert mean is not None and mean >= 0.05
    cut_off = job()
    await d.acquire(cut_off)
    waiting = asyncio.create_task(d.acquire(job("b")))  # keeps tenant "a" from being lifted
    await settle()
    d.fail(cut_off, "r0")
    retry = asyncio.create_task(d.acquire(cut_off, readmit=True))
    await settle()
    # An instant "service" would have pulled the mean down, and with it the predicted waits
    # that admission refuses requests by; the tenant paid for a dispatch that served nothing.
    assert pool.mean_service_s == mean
    assert pool.queue.counter("a") == counter
    retry.cancel()
    waiting.cancel()
