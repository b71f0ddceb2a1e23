"""Invariants of the weighted VTC fair queue under priority bands (property tests)."""

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.scheduling.fair_queue import FairQueue, TokenCosts
from tokenmill.scheduling.job import Band, Job

_ids = itertools.count()


def job(tenant: str, inp: int = 100, out: int = 50, band: Band = Band.INTERACTIVE) -> Job:
    return Job(id=f"j{next(_ids)}", tenant=tenant, model="m", input_tokens=inp,
               max_output_tokens=out, arrived=0.0, deadline=1e9, band=band)  # fmt: skip


def serve(q: FairQueue, capacity: int, rng: random.Random, steps: int, check=None) -> dict:
    """Serve with `capacity` slots; each running job emits one token per step until done."""
    running: list[tuple[Job, int]] = []  # (job, tokens still to emit)
    served: dict[str, int] = {}
    for _ in range(steps):
        while len(running) < capacity and len(q):
            j = q.pop()
            assert j is not None
            served[j.tenant] = served.get(j.tenant, 0) + j.input_tokens
            running.append((j, rng.randint(1, j.max_output_tokens)))
        if check is not None:
            check(q)
        still = []
        for j, left in running:
            q.charge_output(j.tenant, 1)
            served[j.tenant] = served.get(j.tenant, 0) + 2
            if left > 1:
                still.append((j, left - 1))
        running = still
    return served


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tenants=st.integers(2, 5),
    capacity=st.integers(1, 6),
    max_in=st.integers(1, 400),
    max_out=st.integers(1, 60),
)
def test_counter_gap_between_backlogged_tenants_is_bounded(
    seed, tenants, capacity, max_in, max_out
):
    rng = random.Random(seed)
    q = FairQueue()
    names = [f"t{i}" for i in range(tenants)]
    for name in names:  # every tenant stays backlogged for the whole run
        for _ in range(400):
            q.push(job(name, rng.randint(1, max_in), rng.randint(1, max_out)))
    # One request costs at most U; at most `capacity` of a tenant's requests run at once.
    u = q.costs.of_input(max_in) + q.costs.of_output(max_out)
    bound = (capacity + 1) * u

    def check(q: FairQueue) -> None:
        backlogged = q.backlogged()
        if len(backlogged) == tenants:
            counters = [q.counter(t) for t in backlogged]
            assert max(counters) - min(counters) <= bound

    serve(q, capacity, rng, steps=300, check=check)


def test_weighted_shares_follow_weights():
    rng = random.Random(1)
    q = FairQueue(weights={"gold": 3.0, "free": 1.0})
    for _ in range(2000):
        q.push(job("gold", 100, 20))
        q.push(job("free", 100, 20))
    served = serve(q, capacity=4, rng=rng, steps=2000)
    ratio = served["gold"] / served["free"]
    assert 2.7 <= ratio <= 3.3, ratio


def test_a_light_tenant_does_not_wait_behind_a_heavy_backlog():
    q = FairQueue()
    for _ in range(100):
        q.push(job("heavy"))
    for _ in range(10):  # heavy has been served a lot already
        assert q.pop() is not None
        q.charge_output("heavy", 50)
    for _ in range(5):
        q.push(job("light"))
    nxt = [q.pop() for _ in range(10)]
    # FCFS would serve 90 heavy requests first; VTC alternates from the light tenant's arrival.
    assert [j.tenant for j in nxt if j is not None].count("light") == 5


def test_idle_time_cannot_be_banked():
    q = FairQueue()
    for _ in range(50):
        q.push(job("busy"))
    for _ in range(40):
        q.pop()
    assert q.counter("busy") > 0
    q.push(job("returning"))  # was idle the whole time: lifted to the waiting minimum
    assert q.counter("returning") == q.counter("busy")


def test_lift_when_nobody_waits_uses_the_last_served_counter():
    q = FairQueue()
    q.push(job("a", inp=500))
    q.pop()
    q.push(job("b"))
    assert q.counter("b") == q.counter("a") == 500


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(list(Band))), max_size=60))
def test_strict_bands_fcfs_within_tenant_and_nothing_lost(arrivals):
    q = FairQueue()
    pushed = [job(t, band=b) for t, b in arrivals]
    for j in pushed:
        q.push(j)
    order = []
    while (j := q.pop()) is not None:
        order.append(j)
    assert sorted(j.id for j in order) == sorted(j.id for j in pushed)  # no starvation, no loss
    bands = [j.band for j in order]
    assert bands == sorted(bands)  # every interactive job before any batch job
    for tenant, band in itertools.product("abc", Band):
        mine = [j.id for j in order if j.tenant == tenant and j.band == band]
        assert mine == [j.id for j in pushed if j.tenant == tenant and j.band == band]


def test_removed_jobs_are_not_charged_and_not_served():
    q = FairQueue()
    a1, a2 = job("a"), job("a")
    q.push(a1)
    q.push(a2)
    assert q.remove(a1)
    assert not q.remove(a1)
    assert q.counter("a") == 0
    assert q.pop() is a2
    assert q.pop() is None and len(q) == 0 and q.backlogged() == []


def test_cached_input_is_discounted_and_estimates_are_corrected():
    costs = TokenCosts(input=1, output=2, cached_input=0.25)
    assert costs.of_input(1000, cached=800) == 200 + 200
    q = FairQueue(costs)
    q.push(job("a", inp=100))
    q.pop()
    q.correct_input("a", estimated=100, actual=1000, cached=800)
    assert q.counter("a") == 400


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tenants=st.integers(2, 4),
    lo=st.integers(1, 50),
    spread=st.integers(1, 8),
)
def test_no_backlogged_tenant_starves_within_its_band(seed, tenants, lo, spread):
    """With requests of cost lo..hi arriving at random, a waiting tenant is served before
    every other tenant has had more than hi/lo + 1 turns."""
    rng = random.Random(seed)
    hi = lo * spread
    q = FairQueue(TokenCosts(output=0.0))
    names = [f"t{i}" for i in range(tenants)]
    waited = dict.fromkeys(names, 0)  # turns others took while this tenant waited
    for _ in range(400):
        for _ in range(rng.randint(0, 2)):
            q.push(job(rng.choice(names), inp=rng.randint(lo, hi), out=1))
        served = q.pop()
        if served is None:
            continue
        for name in names:
            if name == served.tenant or not q.queued(name):
                waited[name] = 0
            else:
                waited[name] += 1
                assert waited[name] <= (tenants - 1) * (spread + 1)
