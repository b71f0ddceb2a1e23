"""Deployments: the desired state (in the database) and the replicas that serve it (here)."""

import asyncio
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tokenmill.core.errors import Conflict, InvalidRequest, NotFound
from tokenmill.engines.base import EngineAdapter, ReplicaSpec
from tokenmill.engines.capabilities import Capabilities
from tokenmill.engines.registry import get_adapter
from tokenmill.runtime.cordons import Cordons
from tokenmill.runtime.hosts import EngineHost
from tokenmill.runtime.replica import Replica, ReplicaState
from tokenmill.runtime.rollout import Rollout, roll
from tokenmill.runtime.supervisor import ReplicaSupervisor
from tokenmill.store.tables import Deployment

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_REPLICAS = 64
SECRET_OPTIONS = frozenset({"api_key"})  # an attached endpoint's bearer token


@dataclass
class DeploymentRuntime:
    row: Deployment
    adapter: EngineAdapter
    supervisors: list[ReplicaSupervisor] = field(default_factory=list)
    rollout: Rollout | None = None  # the last rolling update, while and after it runs
    rolling: "asyncio.Task[None] | None" = None
    # Held while an update or a drain's move is set up, so that one starts after the other.
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.row.name

    def rolling_out(self) -> bool:
        return self.rollout is not None and self.rollout.state == "rolling"

    def busy(self) -> bool:
        """A rolling update or a drain's move runs, or waits for the one before it."""
        return self.rolling is not None and not self.rolling.done()

    @property
    def replicas(self) -> list[Replica]:
        return [s.replica for s in self.supervisors]

    def active(self) -> list[Replica]:
        """The replicas it runs on purpose: all but those draining to stop."""
        return [r for r in self.replicas if not r.draining]

    @property
    def upstream_model(self) -> str:
        """The name the engine knows the model by."""
        return self.adapter.upstream_model(self.row_spec())

    def row_spec(self) -> ReplicaSpec:
        """What every replica of it shares (the first one's spec)."""
        return _spec(self.row, 0)

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.id == replica_id)

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is ReplicaState.READY]

    def capabilities(self) -> Capabilities:
        """What it can do: as its first ready replica found, else its engine's defaults."""
        ready = self.ready()
        if ready:
            return ready[0].capabilities()
        return self.adapter.capabilities(self.row_spec(), None)

    def failure(self) -> str | None:
        """Why it cannot serve, when every replica it runs was given up on."""
        active = self.active()
        if active and all(r.state is ReplicaState.FAILED for r in active):
            return "; ".join(f"{r.id}: {r.failure}" for r in active)
        return None

    def state(self) -> str:
        """One word for the whole deployment: ready (all), degraded (some), failed, starting."""
        active = self.active()
        ready = [r for r in active if r.state is ReplicaState.READY]
        if active and len(ready) == len(active):
            return "ready"
        if ready:
            return "degraded"
        return "failed" if self.failure() else "starting"

    def view(self) -> dict[str, Any]:
        row = self.row
        return {
            "name": row.name,
            "engine": row.engine,
            "model_path": row.model_path,
            "endpoint": row.endpoint,
            "upstream_model": row.upstream_model,
            "replicas": len(self.active()),
            "min_replicas": row.min_replicas,
            "max_replicas": row.max_replicas,
            "options": _shown_options(row.options or {}),
            "created_at": row.created_at.isoformat(),
            "ready_replicas": len(self.ready()),
            "state": self.state(),
            "capabilities": self.capabilities().view(),
            "failure": self.failure(),
            "replica_status": [r.view() for r in self.replicas],
            "rollout": self.rollout.view() if self.rollout else None,
        }


class Deployments:
    def __init__(
        self,
        engine: Engine,
        http: aiohttp.ClientSession,
        log_dir: Path,
        hosts: Callable[[ReplicaSpec], EngineHost] | None = None,
        cordons: Cordons | None = None,
        node_name: str = "local",
    ) -> None:
        self._engine = engine
        self._http = http
        self._log_dir = log_dir
        # Where each new replica's engine runs (the runtime): None, a child process here.
        self._hosts = hosts
        self.cordons = cordons or Cordons(engine)  # nodes drained: the hosts keep off them
        self._node_name = node_name  # this controller's node, where local replicas run
        self._running: dict[str, DeploymentRuntime] = {}
        self._listeners: list[Callable[[str, list[Replica]], None]] = []
        self._cordoning = asyncio.Lock()
        self._queued: set[asyncio.Task[None]] = set()  # drains' moves being set up

    def subscribe(self, listener: Callable[[str, list[Replica]], None]) -> None:
        """Call `listener(deployment, replicas)` whenever a replica comes, goes or changes state."""
        self._listeners.append(listener)

    def _notify(self, name: str) -> None:
        runtime = self._running.get(name)
        replicas = runtime.replicas if runtime is not None else []
        for listener in self._listeners:
            listener(name, replicas)

    async def start_all(self) -> None:
        rows = await asyncio.to_thread(self._load_rows)
        for row in rows:
            self._launch(row)

    def _load_rows(self) -> list[Deployment]:
        with Session(self._engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Deployment).order_by(Deployment.name)))

    def _launch(self, row: Deployment) -> DeploymentRuntime:
        runtime = DeploymentRuntime(row=row, adapter=get_adapter(row.engine))
        self._running[row.name] = runtime
        for _ in range(min(max(row.replicas, row.min_replicas), row.max_replicas)):
            self._add_replica(runtime)
        self._notify(row.name)
        return runtime

    def _add_replica(self, runtime: DeploymentRuntime) -> Replica:
        taken = {r.spec.index for r in runtime.replicas}
        index = next(i for i in range(len(taken) + 1) if i not in taken)
        replica = Replica(spec=_spec(runtime.row, index), adapter=runtime.adapter)
        name = runtime.row.name
        host = self._hosts(replica.spec) if self._hosts and runtime.adapter.spawns else None
        sup = ReplicaSupervisor(
            replica, self._http, self._log_dir, on_state=lambda _: self._notify(name), host=host
        )
        runtime.supervisors.append(sup)
        sup.start()
        return replica

    def scale(self, name: str, replicas: int) -> None:
        """Run this many replicas: start new ones, or set the newest to drain (they take no
        new requests; `retire` stops each once its last request is done)."""
        runtime = self._running[name]
        active = runtime.active()
        for _ in range(replicas - len(active)):
            self._add_replica(runtime)
        for replica in sorted(active, key=lambda r: r.spec.index)[replicas:]:
            replica.draining = True
        self._notify(name)

    async def retire(self, name: str, replica_id: str) -> None:
        runtime = self._running.get(name)
        if runtime is None:
            return
        sup = next((s for s in runtime.supervisors if s.replica.id == replica_id), None)
        if sup is None:
            return
        runtime.supervisors.remove(sup)
        self._notify(name)
        await sup.stop()

    def runtimes(self) -> list[DeploymentRuntime]:
        return list(self._running.values())

    async def create(
        self,
        name: str,
        engine: str,
        *,
        model_path: str | None = None,
        endpoint: str | None = None,
        upstream_model: str | None = None,
        replicas: int = 1,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not _NAME.match(name):
            raise InvalidRequest(
                "deployment name: 1-128 chars of letters, digits, '.', '_', ':' or '-'",
                param="name",
            )
        low = replicas if min_replicas is None else min_replicas
        high = replicas if max_replicas is None else max_replicas
        _check_range(low, high)
        if name in self._running:
            raise Conflict(f"deployment '{name}' already exists", param="name")
        row = Deployment(
            name=name,
            engine=engine,
            model_path=model_path,
            endpoint=endpoint,
            upstream_model=upstream_model,
            replicas=min(max(replicas, low), high),
            min_replicas=low,
            max_replicas=high,
            options=options or {},
            created_at=datetime.now(UTC),
        )
        await asyncio.to_thread(_validate, row)
        await asyncio.to_thread(self._insert, row)
        return self._launch(row).view()

    async def set_range(
        self, name: str, min_replicas: int | None, max_replicas: int | None
    ) -> dict[str, Any]:
        """A new autoscaling range; the autoscaler moves the replica count into it."""
        runtime = self._running.get(name)
        if runtime is None:
            raise NotFound(f"deployment '{name}' does not exist", param="name")
        row = runtime.row
        low = row.min_replicas if min_replicas is None else min_replicas
        high = row.max_replicas if max_replicas is None else max_replicas
        _check_range(low, high)
        await asyncio.to_thread(self._update_range, name, low, high)
        row.min_replicas, row.max_replicas = low, high
        return runtime.view()

    async def update(
        self,
        name: str,
        *,
        model_path: str | None = None,
        upstream_model: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a rolling update to a new spec (see runtime/rollout.py); returns at once, the
        view's `rollout` shows progress."""
        runtime = self._running.get(name)
        if runtime is None:
            raise NotFound(f"deployment '{name}' does not exist", param="name")
        async with runtime.starting:  # checked and started with no drain's move in between
            return await self._update(runtime, model_path, upstream_model, options)

    async def _update(
        self,
        runtime: DeploymentRuntime,
        model_path: str | None,
        upstream_model: str | None,
        options: dict[str, Any] | None,
    ) -> dict[str, Any]:
        name = runtime.name
        if runtime.busy():
            what = runtime.rollout.cause if runtime.rollout else "a move"
            raise Conflict(f"'{name}' is being rolled ({what}): wait for it to end", param="name")
        row = runtime.row
        before = _Spec(row.model_path, row.upstream_model, dict(row.options or {}))
        after = _Spec(
            model_path if model_path is not None else before.model_path,
            upstream_model if upstream_model is not None else before.upstream_model,
            options if options is not None else before.options,
        )
        probe = Deployment(name=name, engine=row.engine, endpoint=row.endpoint,
                           model_path=after.model_path, upstream_model=after.upstream_model,
                           options=after.options)  # fmt: skip
        await asyncio.to_thread(_validate, probe)
        after = _Spec(probe.model_path, after.upstream_model, after.options)
        await self._set_spec(runtime, after)

        async def give_up(fresh: Replica, why: str) -> None:
            await self.retire(name, fresh.id)
            await self._set_spec(runtime, before)  # replicas started later: the old spec

        runtime.rollout = Rollout(total=len(runtime.active()))
        steps = roll(runtime.rollout, runtime.active(), lambda: self._add_replica(runtime),
                     self._drainer(name), give_up)  # fmt: skip
        runtime.rolling = asyncio.get_running_loop().create_task(steps)
        return runtime.view()

    def _drainer(self, name: str) -> Callable[[Replica], None]:
        def drain(replica: Replica) -> None:
            replica.draining = True
            self._notify(name)

        return drain

    def node_of(self, replica: Replica) -> str | None:
        """Where it runs: its host's node; under the local runtime, this one; None while a
        Ray replica waits to be placed."""
        return replica.node or (self._node_name if self._hosts is None else None)

    async def drain_node(self, node: str, reason: str) -> dict[str, Any]:
        """Drain `node` for maintenance: nothing is placed there any more, and each replica it
        runs is replaced elsewhere the way a rolling update replaces it (a new one ready first,
        then the old one drains). Returns at once; `node_view` shows how far it got."""
        if self._hosts is None:
            raise Conflict(
                f"the local runtime runs every replica on this node ('{self._node_name}'): there "
                "is nowhere to move them. To take it down, stop TokenMill (its replicas finish "
                "what they serve first); to move replicas between machines, run on Ray "
                "(tokenmill up --runtime ray)",
                param="node",
            )
        async with self._cordoning:  # a drain and an undrain of one node never interleave
            await asyncio.to_thread(self.cordons.add, node, reason)
        for runtime in self._running.values():
            if self._on(node, runtime):
                self._queue(self._move_off(node, runtime))
        return self.node_view(node)

    def _on(self, node: str, runtime: DeploymentRuntime) -> list[Replica]:
        """The replicas `runtime` runs on purpose on `node` (an endpoint runs on no node)."""
        return [r for r in runtime.active() if r.adapter.spawns and self.node_of(r) == node]

    def _stopping_on(self, node: str) -> list[Replica]:
        """Replicas on `node` set to drain, still finishing what they serve."""
        return [r for rt in self._running.values() for r in rt.replicas
                if r.draining and r.adapter.spawns and self.node_of(r) == node]  # fmt: skip

    def _queue(self, step: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._queued.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._queued.discard)

    async def _move_off(self, node: str, runtime: DeploymentRuntime) -> None:
        """Replace `runtime`'s replicas on `node`, after whatever it is rolling now (a rolling
        update places its new replicas off the node already)."""
        async with runtime.starting:  # an update being set up takes its turn first
            before = runtime.rolling

            async def steps() -> None:
                if before is not None:
                    await asyncio.wait([before])
                await self._move(node, runtime)

            runtime.rolling = asyncio.get_running_loop().create_task(steps())

    async def _move(self, node: str, runtime: DeploymentRuntime) -> None:
        name, on_node = runtime.name, self._on(node, runtime)
        if not on_node:  # moved meanwhile (an update, a second drain): the last view stays
            return

        async def give_up(fresh: Replica, why: str) -> None:
            await self.retire(name, fresh.id)

        def still_drained() -> bool:  # undrained mid-move: the rest stay where they are
            return node in self.cordons.names()

        runtime.rollout = Rollout(total=len(on_node), cause=f"drain of node {node}")
        await roll(runtime.rollout, on_node, lambda: self._add_replica(runtime),
                   self._drainer(name), give_up, still_drained)  # fmt: skip

    async def undrain_node(self, node: str) -> dict[str, Any]:
        """Let replicas be placed on `node` again; those moved off it stay where they are, and
        a move under way stops before its next replica."""
        async with self._cordoning:
            if not await asyncio.to_thread(self.cordons.remove, node):
                raise NotFound(f"node '{node}' is not drained", param="node")
        return self.node_view(node)

    def node_view(self, node: str) -> dict[str, Any]:
        """Whether `node` is drained, what still runs there (`replicas`, and `stopping`: those
        set to drain, finishing what they serve), and the moves off it."""
        cause = f"drain of node {node}"
        return {
            "node": node,
            "drained": self.cordons.view(node),
            "replicas": [r.id for rt in self._running.values() for r in self._on(node, rt)],
            "stopping": [r.id for r in self._stopping_on(node)],
            "moving": {
                rt.name: rt.rollout.view()
                for rt in self._running.values()
                if rt.rollout is not None and rt.rollout.cause == cause
            },
        }

    async def _set_spec(self, runtime: DeploymentRuntime, spec: "_Spec") -> None:
        await asyncio.to_thread(self._store_spec, runtime.row.name, spec)
        row = runtime.row
        row.model_path, row.upstream_model, row.options = spec

    def _store_spec(self, name: str, spec: "_Spec") -> None:
        with Session(self._engine) as s, s.begin():
            stored = s.get(Deployment, name)
            if stored is not None:
                stored.model_path, stored.upstream_model, stored.options = spec

    def _update_range(self, name: str, low: int, high: int) -> None:
        with Session(self._engine) as s, s.begin():
            stored = s.get(Deployment, name)
            if stored is not None:
                stored.min_replicas, stored.max_replicas = low, high

    def _insert(self, row: Deployment) -> None:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Deployment, row.name) is not None:
                raise Conflict(f"deployment '{row.name}' already exists", param="name")
            s.add(row)

    async def remove(self, name: str) -> None:
        runtime = self._running.pop(name, None)
        if runtime is None:
            raise NotFound(f"deployment '{name}' does not exist", param="name")
        self._notify(name)
        await asyncio.to_thread(self._delete, name)
        await asyncio.gather(*(s.stop() for s in runtime.supervisors))

    def _delete(self, name: str) -> None:
        with Session(self._engine) as s, s.begin():
            row = s.get(Deployment, name)
            if row is not None:
                s.delete(row)

    def views(self) -> list[dict[str, Any]]:
        return [rt.view() for rt in self._running.values()]

    def get(self, name: str) -> DeploymentRuntime | None:
        return self._running.get(name)

    def names(self) -> list[str]:
        return list(self._running)

    def all_replicas(self) -> list[Replica]:
        return [r for rt in self._running.values() for r in rt.replicas]

    async def stop_all(self) -> None:
        for runtime in self._running.values():
            if runtime.rolling is not None:
                runtime.rolling.cancel()
        sups = [s for rt in self._running.values() for s in rt.supervisors]
        await asyncio.gather(*(s.stop() for s in sups))


class _Spec(NamedTuple):
    """What a rolling update changes."""

    model_path: str | None
    upstream_model: str | None
    options: dict[str, Any]


def _shown_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as the API shows them: an upstream's key is a secret, so only its presence."""
    return {k: ("(set)" if k in SECRET_OPTIONS else v) for k, v in options.items()}


def _check_range(low: int, high: int) -> None:
    if not 0 <= low <= high <= MAX_REPLICAS or high == 0:
        raise InvalidRequest(
            f"replicas: need 0 <= min_replicas <= max_replicas <= {MAX_REPLICAS}, max >= 1",
            param="replicas",
        )


def _validate(row: Deployment) -> None:
    """Check the spec on its engine before anything is stored (touches the filesystem)."""
    try:
        adapter = get_adapter(row.engine)
        if row.model_path:
            row.model_path = str(Path(row.model_path).expanduser().resolve())
        adapter.validate(_spec(row, 0))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="engine") from None


def _spec(row: Deployment, index: int) -> ReplicaSpec:
    return ReplicaSpec(
        deployment=row.name,
        index=index,
        model_path=row.model_path,
        endpoint=row.endpoint,
        upstream_model=row.upstream_model,
        options=dict(row.options or {}),
    )
