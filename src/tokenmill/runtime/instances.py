"""Replicas as data: the controller that owns replicas writes each one's row when it changes,
and a heartbeat while it owns them. Readers (the CLI, other gateways) judge a row by its
heartbeat: a controller that died leaves rows whose heartbeat stops.

Writes go off the event loop and are coalesced: a burst of state changes is one transaction
with the latest state of each replica, never one per change.
"""

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from tokenmill.runtime.replica import Replica
from tokenmill.store.tables import ReplicaInstance

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_AFTER_S = 3 * HEARTBEAT_S  # three missed heartbeats: its controller is gone


class ReplicaInstances:
    def __init__(self, engine: Engine, node: str) -> None:
        self._engine = engine
        self._node = node
        self._latest: dict[str, list[dict[str, Any]]] = {}  # deployment -> rows, not yet written
        self._flushing: asyncio.Task[None] | None = None
        # Rows this controller wrote whose replica runs on another node (a Ray node): their
        # `node` column names that node, so ownership of them is kept here.
        self._remote: dict[str, set[str]] = {}  # deployment -> replica ids

    def claim(self) -> None:
        """At start: this node's rows are a previous run's; its replicas start afresh."""
        with Session(self._engine) as s, s.begin():
            s.execute(delete(ReplicaInstance).where(ReplicaInstance.node == self._node))

    def changed(self, deployment: str, replicas: list[Replica]) -> None:
        """A `Deployments` listener (on the event loop): note the change, write it soon."""
        self._latest[deployment] = [self._row(r) for r in replicas]
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._latest:
            batch, self._latest = self._latest, {}
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception:
                log.exception("could not write replica state; retrying with the next change")
                for name, rows in batch.items():
                    self._latest.setdefault(name, rows)
                return

    async def drain(self) -> None:
        """Everything noted so far is written (at shutdown, and for tests)."""
        while self._flushing is not None and not self._flushing.done():
            await self._flushing

    def _row(self, replica: Replica) -> dict[str, Any]:
        endpoint = replica.base_url if replica.port or not replica.adapter.spawns else None
        return {
            "id": replica.id,
            "deployment": replica.spec.deployment,
            "node": replica.node or self._node,
            "engine": replica.adapter.name,
            "endpoint": endpoint,
            "devices": list(replica.devices),
            "state": replica.state.value,
            "draining": replica.draining,
            "pid": replica.pid,
            "restarts": replica.restarts,
            "failure": replica.failure,
            "started_at": replica.started_at,
            "heartbeat_at": time.time(),
        }

    def _write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        with Session(self._engine) as s, s.begin():
            for deployment, rows in batch.items():
                ids = [row["id"] for row in rows]
                mine = ReplicaInstance.node == self._node
                if self._remote.get(deployment):
                    mine = mine | ReplicaInstance.id.in_(self._remote[deployment])
                s.execute(
                    delete(ReplicaInstance).where(
                        ReplicaInstance.deployment == deployment,
                        mine,
                        ReplicaInstance.id.not_in(ids),
                    )
                )
                for row in rows:
                    s.merge(ReplicaInstance(**row))
                remote = {r["id"] for r in rows if r["node"] != self._node}
                self._remote = {**self._remote, deployment: remote}  # a new dict: _beat reads it

    async def heartbeat(self) -> None:
        await asyncio.to_thread(self._beat)

    def _beat(self) -> None:
        remote = {i for ids in self._remote.values() for i in ids}  # a snapshot: never mutated
        mine = ReplicaInstance.node == self._node
        if remote:
            mine = mine | ReplicaInstance.id.in_(remote)
        with Session(self._engine) as s, s.begin():
            s.execute(update(ReplicaInstance).where(mine).values(heartbeat_at=time.time()))


def read_instances(engine: Engine, now: float | None = None) -> list[dict[str, Any]]:
    """Every replica row, with `live`: whether its controller's heartbeat is recent."""
    now = time.time() if now is None else now
    with Session(engine) as s:
        rows = s.scalars(select(ReplicaInstance).order_by(ReplicaInstance.id)).all()
        return [
            {
                "id": r.id,
                "deployment": r.deployment,
                "node": r.node,
                "engine": r.engine,
                "endpoint": r.endpoint,
                "devices": list(r.devices or []),
                "state": r.state,
                "draining": r.draining,
                "pid": r.pid,
                "restarts": r.restarts,
                "failure": r.failure,
                "started_at": r.started_at,
                "heartbeat_age_s": round(now - r.heartbeat_at, 1),
                "live": now - r.heartbeat_at < STALE_AFTER_S,
            }
            for r in rows
        ]
