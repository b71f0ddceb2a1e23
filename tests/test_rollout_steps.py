"""The steps of a rolling update or a drain's move (runtime/rollout.py), without engines:
replicas stand in as plain objects whose state the test sets."""

import asyncio

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.registry import get_adapter
from tokenmill.runtime.replica import Replica, ReplicaState
from tokenmill.runtime.rollout import Rollout, roll


def _replica(index: int, state: ReplicaState = ReplicaState.READY) -> Replica:
    return Replica(spec=ReplicaSpec("d", index), adapter=get_adapter("llamacpp"), state=state)


def test_a_move_stops_before_its_next_replica_once_told_to() -> None:
    old = [_replica(0), _replica(1), _replica(2)]
    started: list[Replica] = []
    drained: list[str] = []
    asked = 0

    def keep_going() -> bool:  # an undrain arrives after the first replica has moved
        nonlocal asked
        asked += 1
        return asked == 1

    def start_new() -> Replica:
        started.append(_replica(10 + len(started)))
        return started[-1]

    async def give_up(fresh: Replica, why: str) -> None:
        raise AssertionError(why)

    progress = Rollout(total=3, cause="drain of node alpha")
    asyncio.run(roll(progress, old, start_new, lambda r: drained.append(r.id), give_up,
                     keep_going))  # fmt: skip
    assert (progress.state, progress.replaced, len(started), drained) == ("stopped", 1, 1, ["d-0"])
    assert progress.view()["cause"] == "drain of node alpha"


def test_a_replacement_that_fails_ends_the_move_and_drains_nothing_more() -> None:
    old = [_replica(0), _replica(1)]
    given_up: list[str] = []

    def start_new() -> Replica:
        fresh = _replica(5, ReplicaState.FAILED)
        fresh.failure = "no Ray node has {'NPU': 1.0} free after 60s"
        return fresh

    async def give_up(fresh: Replica, why: str) -> None:
        given_up.append(why)

    progress = Rollout(total=2)
    asyncio.run(roll(progress, old, start_new, lambda r: None, give_up))
    assert progress.state == "failed" and progress.replaced == 0
    assert given_up == ["d-5 failed to start: no Ray node has {'NPU': 1.0} free after 60s"]
