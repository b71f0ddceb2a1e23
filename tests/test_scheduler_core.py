"""Admission, placement and prefix affinity in the scheduler core (no clock, no I/O)."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.scheduling.core import Dispatch, Limits, Rejected, SchedulerCore
from tokenmill.scheduling.fair_queue import FairQueue, FcfsQueue
from tokenmill.scheduling.job import Band, Job
from tokenmill.scheduling.prefix import BLOCK_CHARS, prompt_blocks
from tokenmill.scheduling.router import ReplicaPicker, ReplicaSlot, RoundRobinPicker

_ids = itertools.count()


def job(tenant: str = "a", band: Band = Band.INTERACTIVE, blocks: tuple[int, ...] = (),
        deadline: float = 1e9) -> Job:  # fmt: skip
    return Job(id=f"j{next(_ids)}", tenant=tenant, model="m", input_tokens=100,
               max_output_tokens=20, arrived=0.0, deadline=deadline, band=band,
               prefix_blocks=blocks)  # fmt: skip


def enter(core: SchedulerCore, j: Job, now: float = 0.0) -> list[Dispatch]:
    """Submit a job; what got placed as a result (it, if a replica was free)."""
    placed = core.submit(j, now)
    return ([placed] if placed else []) + core.dispatch(now)


def core_with(*capacities: int, limits: Limits | None = None) -> SchedulerCore:
    core = SchedulerCore(limits)
    core.update_replicas(
        "m", [ReplicaSlot(f"r{i}", capacity=c, cache_blocks=64) for i, c in enumerate(capacities)]
    )
    return core


@settings(max_examples=80, deadline=None)
@given(
    caps=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    ops=st.lists(st.sampled_from(["submit", "finish", "dispatch"]), max_size=120),
    seed=st.integers(0, 1000),
)
def test_work_conserving_and_never_over_capacity(caps, ops, seed):
    rng = random.Random(seed)
    core = core_with(*caps, limits=Limits(queue_per_model=1000, queue_per_tenant=1000))
    running: list[Job] = []
    submitted = finished = 0
    for op in ops:
        if op == "submit":
            running += [d.job for d in enter(core, job(rng.choice("abc")))]
            submitted += 1
        elif op == "finish" and running:
            core.finish(running.pop(rng.randrange(len(running))), now=1.0)
            finished += 1
        running += [d.job for d in core.dispatch(now=0.0)]
        slots = core.pool("m").replicas.values()
        assert all(0 <= s.in_flight <= s.capacity for s in slots)
        # work conservation: nothing waits while a replica has a free slot
        assert len(core.pool("m").queue) == 0 or not any(s.free for s in slots)
        # nothing lost: every job is queued, running or finished
        assert finished + len(running) + len(core.pool("m").queue) == submitted


def test_full_queue_refuses_with_retry_after_and_sheds_batch_first():
    core = core_with(1, limits=Limits(queue_per_model=4, queue_per_tenant=100))
    core.submit(job(), 0.0)
    core.dispatch(0.0)  # the only slot is busy from here on
    core.submit(job(band=Band.BATCH), 0.0)
    core.submit(job(band=Band.BATCH), 0.0)
    with pytest.raises(Rejected) as batch:  # half full: batch is shed ...
        core.submit(job(band=Band.BATCH), 0.0)
    assert batch.value.retry_after_s >= 1
    core.submit(job(), 0.0)  # ... interactive still gets in
    core.submit(job(), 0.0)
    with pytest.raises(Rejected, match="queue for 'm' is full"):
        core.submit(job(), 0.0)


def test_per_tenant_limit_leaves_room_for_others():
    core = core_with(1, limits=Limits(queue_per_model=100, queue_per_tenant=2))
    core.submit(job("a"), 0.0)
    core.dispatch(0.0)
    core.submit(job("a"), 0.0)
    core.submit(job("a"), 0.0)
    with pytest.raises(Rejected, match="too many of your requests"):
        core.submit(job("a"), 0.0)
    core.submit(job("b"), 0.0)


def test_a_deadline_the_queue_cannot_meet_is_refused_at_once():
    core = core_with(1)
    first = job()
    core.submit(first, 0.0)
    core.dispatch(0.0)
    core.finish(first, now=10.0)  # requests take ~10 s here
    core.submit(job(), 10.0)
    core.dispatch(10.0)
    with pytest.raises(Rejected, match="predicted wait") as exc:
        core.submit(job(deadline=15.0), 10.0)
    assert exc.value.retry_after_s == pytest.approx(10.0)
    core.submit(job(deadline=30.0), 10.0)  # one that can wait is queued


def test_interactive_waits_only_behind_its_band_and_batch_only_for_what_is_left():
    core = core_with(1)
    running = job(band=Band.BATCH)
    core.submit(running, 0.0)
    for _ in range(20):  # no history yet: batch queues
        core.submit(job(band=Band.BATCH), 0.0)
    for t in range(1, 61):  # for a minute, interactive work arrives and goes first
        core.finish(running, now=float(t))
        core.submit(job(), float(t))
        [placed] = core.dispatch(float(t))
        running = placed.job
        assert running.band is Band.INTERACTIVE
    pool = core.pool("m")
    # 20 batch jobs ahead do not count against an interactive one: it is next
    assert core.predicted_wait(pool, job(), 60.0) == pytest.approx(1.0)
    # interactive has been taking the whole replica: batch would wait for nothing
    with pytest.raises(Rejected, match="higher-priority requests") as exc:
        core.submit(job(band=Band.BATCH, deadline=400.0), 60.0)
    assert 1 <= exc.value.retry_after_s <= 60
    # once interactive traffic has died down, batch has the capacity again
    assert core.predicted_wait(pool, job(band=Band.BATCH), 120.0) == pytest.approx(21.0, 0.05)


def test_no_replica_yet_means_wait_not_refuse():
    core = SchedulerCore()
    core.submit(job(), 0.0)  # a cold start: the model has no replica yet
    assert core.dispatch(0.0) == []
    core.update_replicas("m", [ReplicaSlot("r0", capacity=1, cache_blocks=8)])
    assert len(core.dispatch(0.0)) == 1


def test_unhealthy_replicas_get_nothing():
    core = core_with(2, 2)
    core.update_replicas("m", [ReplicaSlot("r0", 2, 64, healthy=False), ReplicaSlot("r1", 2, 64)])
    placed = [d for _ in range(4) for d in enter(core, job())]
    assert {d.choice.replica.id for d in placed} == {"r1"}


def test_prefix_affinity_then_imbalance_guard():
    core = core_with(4, 4)
    system_a = prompt_blocks(["A" * BLOCK_CHARS * 8])
    system_b = prompt_blocks(["B" * BLOCK_CHARS * 8])
    first_a, first_b = job(blocks=system_a), job(blocks=system_b)
    d = enter(core, first_a) + enter(core, first_b)
    home = {x.job.id: x.choice.replica.id for x in d}
    assert home[first_a.id] != home[first_b.id]  # spread while nothing is cached
    for x in d:
        core.finish(x.job, 1.0)
    again = job(blocks=system_a)
    [placed] = enter(core, again, 1.0)
    assert placed.choice.replica.id == home[first_a.id]
    assert placed.choice.reason == "affinity" and placed.choice.matched_blocks == 8
    assert home[first_a.id] in placed.choice.explain()
    for _ in range(2):  # A's replica fills up with A traffic ...
        enter(core, job(blocks=system_a), 1.0)
    [spill] = enter(core, job(blocks=system_a), 1.0)  # 3/4 busy vs 0/4: balance wins
    assert spill.choice.reason == "imbalance"
    assert spill.choice.replica.id == home[first_b.id]


def test_prompt_blocks_share_a_prefix_and_diverge_after_it():
    shared = "s" * BLOCK_CHARS * 3
    a = prompt_blocks([shared, "question one " * 100])
    b = prompt_blocks([shared, "question two " * 100])
    assert a[:3] == b[:3] and a[3] != b[3]
    assert prompt_blocks(["x" * (BLOCK_CHARS - 1)]) == ()  # no whole block: nothing to cache


def test_picker_prefers_least_loaded_without_a_prefix():
    slots = [ReplicaSlot("busy", 4, 8, in_flight=3), ReplicaSlot("idle", 4, 8, in_flight=1)]
    choice = ReplicaPicker().pick(job(), slots)
    assert choice is not None and choice.replica.id == "idle"
    assert choice.reason == "least-loaded"


def test_a_readmitted_job_is_queued_even_when_a_new_one_would_be_refused():
    core = core_with(1, limits=Limits(queue_per_model=1, queue_per_tenant=1))
    core.submit(job(), 0.0)
    core.dispatch(0.0)
    core.submit(job(), 0.0)  # the queue is now full
    with pytest.raises(Rejected):
        core.submit(job(), 0.0)
    core.submit(job(), 0.0, readmit=True)  # its replica failed it: it was admitted once
    assert len(core.pool("m").queue) == 2


@pytest.mark.parametrize(("slack", "expected"), [(4096.0, "b"), (0.0, "a")])
def test_a_freed_replica_takes_the_near_fair_request_it_has_cached(slack, expected):
    core = core_with(1, 1, limits=Limits(locality_slack=slack))
    prompt_a = prompt_blocks(["A" * BLOCK_CHARS * 4])
    prompt_b = prompt_blocks(["B" * BLOCK_CHARS * 4])
    [on_r0] = enter(core, job("b", blocks=prompt_b))  # r0 now holds b's prompt
    [on_r1] = enter(core, job("a", blocks=prompt_a))  # r1 holds a's
    assert (on_r0.choice.replica.id, on_r1.choice.replica.id) == ("r0", "r1")
    waiting_a, waiting_b = job("a", blocks=prompt_a), job("b", blocks=prompt_b)
    core.on_output(on_r0.job, 100)  # b has received more service: a is owed more ...
    core.submit(waiting_a, 0.0)
    core.submit(waiting_b, 0.0)
    core.finish(on_r0.job, 1.0)  # ... but r0 frees first, and r0 holds b's prompt
    [placed] = core.dispatch(1.0)
    assert placed.job.tenant == expected
    assert placed.choice.replica.id == "r0"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), slack=st.sampled_from([0.0, 500.0, 4096.0]))
def test_locality_choice_keeps_the_fairness_gap_within_its_slack(seed, slack):
    rng = random.Random(seed)
    core = core_with(2, 2, limits=Limits(10**6, 10**6, locality_slack=slack))
    prompts = [prompt_blocks([c * BLOCK_CHARS * 3]) for c in "WXYZ"]
    tenants = ["a", "b", "c"]
    running: list[Job] = []
    for _ in range(60):  # everyone stays backlogged throughout
        for t in tenants:
            running += [d.job for d in enter(core, job(t, blocks=rng.choice(prompts)))]
    queue = core.pool("m").queue
    u = queue.costs.of_input(100) + queue.costs.of_output(20)  # one request's whole cost
    for step in range(150):
        running += [d.job for d in core.dispatch(float(step))]
        done = running.pop(rng.randrange(len(running)))
        core.on_output(done, 20)
        core.finish(done, float(step))
        counters = [queue.counter(t) for t in tenants]
        assert max(counters) - min(counters) <= (4 + 1) * u + slack


def test_new_prefixes_spread_over_idle_replicas_instead_of_piling_up():
    core = core_with(2, 2)
    homes = {}
    for tenant in "abcd":  # one after another: every replica is idle each time
        system = prompt_blocks([tenant * BLOCK_CHARS * 8])
        [placed] = enter(core, job(tenant, blocks=system))
        homes[tenant] = placed.choice.replica.id
        core.finish(placed.job, 1.0)
    assert sorted(homes.values()) == ["r0", "r0", "r1", "r1"]


@pytest.mark.parametrize(("queue_type", "admitted"), [(FairQueue, True), (FcfsQueue, False)])
def test_a_light_tenant_is_not_refused_for_a_heavy_tenants_backlog(queue_type, admitted):
    core = SchedulerCore(Limits(1000, 1000), queue_type=queue_type)
    core.update_replicas("m", [ReplicaSlot("r0", capacity=1, cache_blocks=8)])
    first = job("heavy")
    core.submit(first, 0.0)
    core.finish(first, now=1.0)  # requests take ~1 s here
    for _ in range(50):
        core.submit(job("heavy"), 1.0)  # 50 s of the heavy tenant's work waits
    light = job("light", deadline=11.0)
    if admitted:  # VTC serves it within a turn or two of the heavy tenant's
        assert core.predicted_wait(core.pool("m"), light, 1.0) == pytest.approx(2.0)
        core.submit(light, 1.0)
    else:  # FCFS puts it behind all 50
        with pytest.raises(Rejected, match="predicted wait"):
            core.submit(light, 1.0)


def _learned_prefill(core: SchedulerCore, seconds_per_token: float) -> None:
    """One finished request teaches the core how long a prefill takes."""
    warm = job("w")
    assert len(enter(core, warm)) == 1
    core.on_first_token(warm, now=100 * seconds_per_token)
    core.on_prompt_counted(warm, prompt_tokens=100, cached_tokens=0)
    core.finish(warm, now=1.0)


def test_a_request_waits_for_the_busy_replica_holding_its_prompt_but_not_for_long():
    core = core_with(1, 1)
    _learned_prefill(core, 0.01)  # 10 ms a prompt token: 8 blocks of 100 tokens save ~1 s
    system = prompt_blocks(["S" * BLOCK_CHARS * 8])
    [first] = enter(core, job("a", blocks=system), now=1.0)
    home = first.choice.replica.id
    held = Job(id="held", tenant="a", model="m", input_tokens=100, max_output_tokens=20,
               arrived=1.1, deadline=1e9, prefix_blocks=system)  # fmt: skip
    assert enter(core, held, now=1.1) == []  # the other replica is free, but cold
    assert core.wake_at("m") == pytest.approx(1.1 + 1.0)
    assert core.dispatch(now=1.5) == []
    core.finish(first.job, now=1.6)  # home frees up within the wait: it goes there
    [placed] = core.dispatch(now=1.6)
    assert placed.job is held and placed.choice.replica.id == home


def test_a_held_request_goes_elsewhere_once_the_saving_is_used_up():
    core = core_with(1, 1)
    _learned_prefill(core, 0.01)
    system = prompt_blocks(["S" * BLOCK_CHARS * 8])
    [first] = enter(core, job("a", blocks=system), now=1.0)
    held = Job(id="held", tenant="a", model="m", input_tokens=100, max_output_tokens=20,
               arrived=1.1, deadline=1e9, prefix_blocks=system)  # fmt: skip
    assert enter(core, held, now=1.1) == []
    [placed] = core.dispatch(now=core.wake_at("m"))
    assert placed.job is held and placed.choice.replica.id != first.choice.replica.id


def test_round_robin_never_holds():
    core = SchedulerCore(picker=RoundRobinPicker())
    core.update_replicas("m", [ReplicaSlot(f"r{i}", 1, 64) for i in range(2)])
    _learned_prefill(core, 0.01)
    system = prompt_blocks(["S" * BLOCK_CHARS * 8])
    enter(core, job("a", blocks=system), now=1.0)
    assert len(enter(core, job("a", blocks=system), now=1.1)) == 1
