"""A rolling update: a deployment's replicas replaced one at a time by replicas of its new spec
(a model file, an upstream name, engine options), with no request lost.

Each step starts one new replica (one more than the deployment runs: the surge), waits until it
is ready, then sets one old replica to drain: it takes no new requests, and the autoscaler
stops it once its last one is answered. A new replica that fails to start ends the rollout:
the deployment keeps its old spec for any replica started later, and the old replicas not yet
replaced go on serving.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenmill.runtime.replica import Replica, ReplicaState

log = logging.getLogger(__name__)

READY_WITHIN_S = 600.0  # a big model on a slow disk loads for minutes


@dataclass
class Rollout:
    """Progress, as the deployment's view shows it."""

    total: int
    cause: str = "update"  # or "drain of node NAME": its replicas moved elsewhere
    state: Literal["rolling", "done", "failed", "stopped"] = "rolling"
    replaced: int = 0
    error: str | None = None
    started_at: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "state": self.state,
            "replaced": self.replaced,
            "of": self.total,
            "error": self.error,
            "started_at": self.started_at,
        }


async def roll(
    rollout: Rollout,
    old: list[Replica],
    start_new: Callable[[], Replica],
    drain: Callable[[Replica], None],
    give_up: Callable[[Replica, str], Awaitable[None]],
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Replace `old`, oldest first: `start_new` adds a replica of the new spec, `drain` sets an
    old one to drain, `give_up` stops a new one that will not come up and restores the spec.
    `keep_going` is asked before each replica: False stops there ("stopped")."""
    for replica in sorted(old, key=lambda r: r.spec.index):
        if not keep_going():
            rollout.state = "stopped"
            return
        fresh = start_new()
        why = await _ready(fresh)
        if why is not None:  # undone first: "failed" is said once the old spec is back
            error = f"{fresh.id} {why}"
            log.error("rollout of %s stopped: %s", fresh.spec.deployment, error)
            await give_up(fresh, error)
            rollout.state, rollout.error = "failed", error
            return
        drain(replica)
        rollout.replaced += 1
        log.info("rollout of %s: %s replaces %s (%d of %d)", fresh.spec.deployment, fresh.id,
                 replica.id, rollout.replaced, rollout.total)  # fmt: skip
    rollout.state = "done"


async def _ready(replica: Replica) -> str | None:
    """None once the replica is ready; else why it will not be."""
    deadline = time.monotonic() + READY_WITHIN_S
    while replica.state is not ReplicaState.READY:
        if replica.state is ReplicaState.FAILED:
            return f"failed to start: {replica.failure}"
        if time.monotonic() > deadline:
            return f"not ready within {READY_WITHIN_S:.0f} s"
        await asyncio.sleep(0.2)
    return None
