"""The scheduler driven in real time: bounded waits, cancellation, no leaked slots."""

import asyncio
import itertools
import time

import pytest

from tokenmill.scheduling.core import Rejected, SchedulerCore
from tokenmill.scheduling.dispatcher import Abandoned, Dispatcher
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.router import ReplicaSlot

_ids = itertools.count()


def job(tenant: str = "a", wait_s: float = 5.0) -> Job:
    now = time.monotonic()
    return Job(id=f"d{next(_ids)}", tenant=tenant, model="m", input_tokens=10,
               max_output_tokens=10, arrived=now, deadline=now + wait_s)  # fmt: skip


def one_slot() -> tuple[Dispatcher, ReplicaSlot]:
    d = Dispatcher(SchedulerCore())
    slot = ReplicaSlot("r0", capacity=1, cache_blocks=8)
    d.update_replicas("m", [slot])
    return d, slot


async def test_free_capacity_is_granted_at_once_and_queued_jobs_follow_releases():
    d, slot = one_slot()
    first = job()
    choice = await d.acquire(first)
    assert choice.replica is slot and slot.in_flight == 1
    second = asyncio.create_task(d.acquire(job("b")))
    await asyncio.sleep(0.01)
    assert not second.done()  # waits in the gateway, not at the engine
    d.release(first)
    assert (await asyncio.wait_for(second, 1)).replica is slot
    assert slot.in_flight == 1


async def test_a_client_that_leaves_while_queued_is_dropped_uncharged():
    d, slot = one_slot()
    holder = job()
    await d.acquire(holder)
    leaver = job("leaver")
    task = asyncio.create_task(d.acquire(leaver))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    queue = d.core.pool("m").queue
    # lifted to the served tenant's counter on arrival (VTC), but charged nothing on top
    assert len(queue) == 0 and queue.counter("leaver") == queue.counter("a")
    d.release(holder)
    assert slot.in_flight == 0


async def test_every_wait_is_bounded_by_the_deadline():
    d, slot = one_slot()
    await d.acquire(job())
    started = time.monotonic()
    with pytest.raises(Rejected, match="deadline"):
        await d.acquire(job("late", wait_s=0.05))
    assert time.monotonic() - started < 1.0
    assert len(d.core.pool("m").queue) == 0 and slot.in_flight == 1


async def test_cancelled_right_after_placement_gives_the_slot_back():
    d, slot = one_slot()
    holder = job()
    await d.acquire(holder)
    task = asyncio.create_task(d.acquire(job("b")))
    await asyncio.sleep(0.01)
    d.release(holder)  # places "b" and resolves its future ...
    task.cancel()  # ... but its client leaves before the task resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slot.in_flight == 0


async def test_a_model_without_replicas_waits_for_one():
    d = Dispatcher(SchedulerCore())
    task = asyncio.create_task(d.acquire(job()))
    await asyncio.sleep(0.01)
    d.update_replicas("m", [ReplicaSlot("r0", capacity=1, cache_blocks=8)])
    assert (await asyncio.wait_for(task, 1)).replica.id == "r0"


async def test_a_client_gone_while_queued_ends_its_wait():
    d, slot = one_slot()
    await d.acquire(job())
    gone = asyncio.Event()
    task = asyncio.create_task(d.acquire(job("b"), client_gone=gone.wait))
    await asyncio.sleep(0.1)  # past the grace period: the client is being watched
    gone.set()
    with pytest.raises(Abandoned):
        await asyncio.wait_for(task, 1)
    assert len(d.core.pool("m").queue) == 0 and slot.in_flight == 1
