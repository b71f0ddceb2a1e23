"""The `ray` runtime: each replica's engine runs on a Ray node, inside an actor that holds the
resources its deployment asks for (an accelerator declared as a Ray resource: GPU, NPU, HPU
built in; MLU, DCU custom), and that starts, waits for and stops the engine process there.

Ray is an optional extra (`tokenmill[ray]`): this module imports it only when a replica is
placed, so the default install and `make run` never load it. The engine binary and the model
file must exist at the same paths on the node that runs the replica.

A node goes by the name `tokenmill node join` gave it (the Ray node label `tokenmill.io/node`),
else by its Ray node id. Drained nodes (runtime/cordons.py) are kept out with a label selector
on Ray's own `ray.io/node-id` label, so no new actor, restart or replacement lands there.
"""

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tokenmill.engines.base import LaunchCommand, ReplicaSpec
from tokenmill.fleet.ray_resources import NODE_LABEL, node_label
from tokenmill.runtime.engine_tls import TlsRelay, self_signed
from tokenmill.runtime.hosts import EngineHost, LocalHost, Placement, free_port_on

log = logging.getLogger(__name__)

PLACE_TIMEOUT_S = 60.0  # no node that fits within this: the start fails (and is retried)
CALL_TIMEOUT_S = 30.0
PLACE_TRIES = 3  # placements that land on a node drained meanwhile, before giving up
NODE_LOST = -int(signal.SIGKILL)  # the exit code of an engine whose actor or node is gone
NODE_ID_LABEL = "ray.io/node-id"  # every Ray node carries it
LOOPBACK = "127.0.0.1"  # where an engine binds: only its relay is reachable from elsewhere

_connected = threading.Lock()
_actor_class: Any = None


def actor_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Ray's actor options for a deployment's options: `{"resource": "NPU", "devices": 2}`
    asks for 2 NPUs (GPU and CPU through Ray's own fields); no resource asks for one CPU."""
    resource = options.get("resource")
    if not resource:
        return {"num_cpus": 1}
    count = float(options.get("devices") or 1)
    if resource == "GPU":
        return {"num_cpus": 0, "num_gpus": count}
    if resource == "CPU":
        return {"num_cpus": count}
    return {"num_cpus": 0, "resources": {str(resource): count}}


def connect(address: str | None, node_name: str | None = None) -> None:
    """Join the Ray cluster at `address`, or start a local head when None, named `node_name`
    (once per process)."""
    import ray

    with _connected:
        if ray.is_initialized():
            return
        labels = None
        if address is None and node_name:  # a head started here: named as `node join` names
            try:
                labels = {NODE_LABEL: node_label(node_name)}
            except ValueError as exc:
                log.warning("ray runtime: the head goes by its Ray node id: %s", exc)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, labels=labels)
        log.info("ray runtime: connected to %s", address or "a new local head")


def node_ids_named(names: frozenset[str]) -> list[str]:
    """The ids of the live Ray nodes that go by one of `names` (their label, or their id)."""
    import ray

    return sorted(
        n["NodeID"]
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n.get("Alive") and (n["NodeID"] in names or n.get("Labels", {}).get(NODE_LABEL) in names)
    )


def avoiding(options: Mapping[str, Any], node_ids: list[str]) -> dict[str, Any]:
    """Actor options that keep it off these nodes."""
    if not node_ids:
        return dict(options)
    return {**options, "label_selector": {NODE_ID_LABEL: f"!in({','.join(node_ids)})"}}


async def connect_keeping_signals(address: str | None, node_name: str | None) -> None:
    """`connect` off the event loop; Ray's core installs its own SIGTERM/SIGINT handlers (a
    crash dump, then death), which would kill the server mid-request: put ours back."""
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    await asyncio.to_thread(connect, address, node_name)
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


def _actor() -> Any:
    global _actor_class
    if _actor_class is None:
        import ray

        _actor_class = ray.remote(max_restarts=0)(EngineActor)
    return _actor_class


class EngineActor:
    """On its Ray node: one engine process, run as `LocalHost` runs it (its own session, killed
    with the actor's process), bound to the node's loopback, and the TLS relay that is its
    only way in from other machines. An async actor: `wait` and `stop` run side by side."""

    def __init__(self) -> None:
        self._host = LocalHost()
        self._relay: TlsRelay | None = None
        self._pair: tuple[bytes, bytes] | None = None

    async def place(self) -> dict[str, Any]:
        """Its node's address and the relay's port there, the node's name, the devices Ray
        gave it (e.g. `["NPU:1"]`; Ray also set the vendor's visible-devices variable, which
        the engine inherits), the engine's loopback port, and the relay's certificate."""
        import ray

        context = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        name = context.get_node_labels().get(NODE_LABEL) or context.get_node_id()
        held = context.get_accelerator_ids()
        engine_port = free_port_on(LOOPBACK)
        port = free_port_on(ip)
        while port == engine_port and ip == LOOPBACK:  # one node per machine is the norm
            port = free_port_on(ip)
        self._relay = TlsRelay(ip, port, engine_port)
        self._pair = await asyncio.to_thread(self_signed, ip)
        return {
            "host": ip, "port": port, "node": str(name), "engine_port": engine_port,
            "devices": [f"{kind}:{i}" for kind in sorted(held) for i in held[kind]],
            "cert": self._pair[0],
        }  # fmt: skip

    async def start(self, argv: list[str], env: dict[str, str], log_path: str) -> int:
        if self._relay is not None and self._pair is not None:
            await self._relay.start(*self._pair)
        return await self._host.start(LaunchCommand(argv, env), Path(log_path))

    async def wait(self) -> int:
        return await self._host.wait()

    async def stop(self) -> None:
        await self._host.stop()
        if self._relay is not None:
            await self._relay.stop()

    async def crash_report(self, code: int, lines: int) -> str:
        return await self._host.crash_report(code, lines)


class RayHost:
    """A replica's engine on whichever Ray node has the resources it asks: a new actor at each
    start (so a restart after a node is lost lands on a node that fits), killed at its stop."""

    def __init__(
        self,
        options: Mapping[str, Any],
        address: str | None,
        drained: Callable[[], frozenset[str]] = frozenset,
        node_name: str | None = None,
    ) -> None:
        self._options = actor_options(options)
        self._address = address
        self._drained = drained  # read at each placement: a drain applies to restarts too
        self._node_name = node_name  # a head started here goes by it
        self._actor: Any = None
        self.node: str | None = None

    async def place(self, host: str) -> Placement:
        await self.stop()  # a previous start's actor, if any
        await connect_keeping_signals(self._address, self._node_name)
        for _ in range(PLACE_TRIES):
            drained = self._drained()
            kept_off = await asyncio.to_thread(node_ids_named, drained) if drained else []
            self._actor = _actor().options(**avoiding(self._options, kept_off)).remote()
            try:
                where = await asyncio.wait_for(self._actor.place.remote(), PLACE_TIMEOUT_S)
            except BaseException as exc:  # a timeout, a failed actor, or a stop meanwhile
                self._discard()  # holding devices it will never use: free them now
                if not isinstance(exc, TimeoutError):
                    raise
                but = f" (drained: {', '.join(sorted(drained))})" if drained else ""
                raise RuntimeError(
                    f"no Ray node has {self._options} free after {PLACE_TIMEOUT_S:.0f}s{but}"
                ) from None
            if str(where["node"]) not in self._drained():
                break
            self._discard()  # its node was drained while it waited to be scheduled: again
        else:
            raise RuntimeError(f"placed on a drained node {PLACE_TRIES} times in a row")
        self.node = str(where["node"])
        return Placement(
            host=str(where["host"]), port=int(where["port"]), node=self.node,
            devices=tuple(where["devices"]), engine_host=LOOPBACK,
            engine_port=int(where["engine_port"]), cert=bytes(where["cert"]),
        )  # fmt: skip

    async def start(self, cmd: LaunchCommand, log_path: Path) -> int:
        ref = self._actor.start.remote(cmd.argv, cmd.env, str(log_path))
        return int(await asyncio.wait_for(ref, CALL_TIMEOUT_S))

    async def wait(self) -> int:
        import ray

        try:
            return int(await self._actor.wait.remote())
        except ray.exceptions.RayError as exc:  # the actor died, or its node was lost
            log.warning("ray runtime: engine on node %s lost: %s", self.node, exc)
            return NODE_LOST

    def _discard(self) -> None:
        """Kill an actor that started no engine (nothing to stop gracefully)."""
        actor, self._actor = self._actor, None
        if actor is not None:
            import ray

            ray.kill(actor)

    async def stop(self) -> None:
        actor, self._actor = self._actor, None
        if actor is None:
            return
        import ray

        try:
            await asyncio.wait_for(actor.stop.remote(), CALL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            log.info("ray runtime: stopping the engine on node %s: %r", self.node, exc)
        ray.kill(actor)  # the engine dies with its actor's process (PDEATHSIG) if still alive

    async def crash_report(self, code: int, lines: int) -> str:
        import ray

        if self._actor is None:
            return f"engine on Ray node {self.node} ended ({code}) before ready"
        try:
            ref = self._actor.crash_report.remote(code, lines)
            return f"on Ray node {self.node}: {await asyncio.wait_for(ref, CALL_TIMEOUT_S)}"
        except (ray.exceptions.RayError, TimeoutError):
            return f"engine on Ray node {self.node} lost before ready"


def ray_hosts(
    address: str | None, drained: Callable[[], frozenset[str]], node_name: str
) -> Callable[[ReplicaSpec], EngineHost]:
    """The host for each new replica under the `ray` runtime (Deployments' `hosts`)."""

    def make(spec: ReplicaSpec) -> EngineHost:
        return RayHost(spec.options, address, drained, node_name)

    return make
