"""The autoscaling policy (no clock, no I/O): when to add, remove, and cold-start replicas."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmill.scheduling.autoscale import Autoscaler, ScalePolicy, ScaleSignals


def signals(replicas: int = 1, starting: int = 0, queued: int = 0, in_flight: int = 0):
    return ScaleSignals(replicas, starting, queued, in_flight, slots_per_replica=4)


def scaler(low: int = 0, high: int = 3) -> Autoscaler:
    return Autoscaler(ScalePolicy(low, high, up_after_s=10, down_after_s=60, zero_after_s=300))


def test_a_request_for_a_scaled_to_zero_deployment_starts_a_replica_at_once():
    s = scaler()
    assert s.decide(0.0, signals(replicas=0)) == 0  # nobody asks: stays at zero
    assert s.decide(1.0, signals(replicas=0, queued=1)) == 1


def test_scales_up_only_after_queueing_is_sustained_and_one_step_at_a_time():
    s = scaler()
    busy = signals(replicas=1, queued=5, in_flight=4)
    assert s.decide(0.0, busy) == 1
    assert s.decide(9.9, busy) == 1
    assert s.decide(10.0, busy) == 2
    # the new replica is starting: no second step however long the queue stays
    assert s.decide(30.0, signals(replicas=2, starting=1, queued=5, in_flight=4)) == 2
    assert s.decide(31.0, signals(replicas=2, queued=5, in_flight=8)) == 3
    assert s.decide(99.0, signals(replicas=3, queued=5, in_flight=12)) == 3  # max


def test_a_queue_that_empties_resets_the_clock():
    s = scaler()
    assert s.decide(0.0, signals(queued=2, in_flight=4)) == 1
    assert s.decide(8.0, signals(queued=0, in_flight=4)) == 1
    assert s.decide(12.0, signals(queued=2, in_flight=4)) == 1  # queued again only since 12
    assert s.decide(22.0, signals(queued=2, in_flight=4)) == 2


def test_scales_down_when_one_replica_fewer_would_be_half_idle_for_a_while():
    s = scaler(low=1)
    assert s.decide(0.0, signals(replicas=3, in_flight=4)) == 3  # 2 replicas: 4 of 8 slots
    assert s.decide(59.0, signals(replicas=3, in_flight=4)) == 3
    assert s.decide(60.0, signals(replicas=3, in_flight=4)) == 2
    assert s.decide(61.0, signals(replicas=2, in_flight=3)) == 2  # 1 replica: 3 of 4, too busy
    assert s.decide(200.0, signals(replicas=2, in_flight=3)) == 2


def test_scales_to_zero_only_after_a_long_idle_and_only_when_allowed():
    allowed, kept = scaler(low=0), scaler(low=1)
    for s in (allowed, kept):
        s.decide(0.0, signals(replicas=1))
    assert allowed.decide(299.0, signals(replicas=1)) == 1
    assert allowed.decide(300.0, signals(replicas=1)) == 0
    assert kept.decide(10_000.0, signals(replicas=1)) == 1


def test_a_changed_range_is_applied_at_once():
    assert scaler(low=2, high=3).decide(0.0, signals(replicas=1)) == 2
    assert scaler(low=0, high=1).decide(0.0, signals(replicas=3)) == 1


def test_a_range_must_make_sense():
    with pytest.raises(ValueError, match="min <= max"):
        ScalePolicy(3, 2)


@given(
    low=st.integers(0, 3),
    extra=st.integers(0, 3),
    steps=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 2), st.integers(0, 20), st.integers(0, 30)),
        max_size=40,
    ),
)
def test_moves_one_step_at_a_time_within_the_range(low, extra, steps):
    high = max(1, low + extra)
    s = Autoscaler(ScalePolicy(low, high, up_after_s=5, down_after_s=5, zero_after_s=5))
    replicas = low
    for i, (dt_marker, starting, queued, in_flight) in enumerate(steps):
        now = i * 3.0 + dt_marker
        sig = ScaleSignals(replicas, min(starting, replicas), queued, in_flight, 4)
        target = s.decide(now, sig)
        assert low <= target <= high
        assert abs(target - replicas) <= 1
        if target > replicas and replicas > 0:
            assert queued > 0 and sig.starting == 0  # up only for waiting work
        if target < replicas:
            assert queued == 0  # never down while requests wait
        replicas = target
