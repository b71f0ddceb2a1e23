"""Under the `ray` runtime, one agent per Ray node (a small actor pinned to it, holding no
resource) that reports what only that node can see: its accelerators as discovery finds them
there (inventory, utilisation, memory, power, temperature) and its power draw as its own meters
read it. The controller asks each agent every so often, off the request path: `tokenmill
fleet` and `/metrics` show every node, and each node's power goes into the power log under its
name, for the economics report (the local runtime's one node is `fleet/watch.py`'s).

An agent imports `observe/`'s meters: measuring must happen on the node measured.
"""

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from tokenmill.core.periodic import Periodic
from tokenmill.core.power import Power
from tokenmill.fleet.discovery import Discovery, discover
from tokenmill.fleet.ray_resources import NODE_LABEL
from tokenmill.observe.power import PowerSource
from tokenmill.runtime.ray_host import connect_keeping_signals

log = logging.getLogger(__name__)

REPORT_EVERY_S = 15.0
REPORT_TIMEOUT_S = 30.0  # vendor tools can take seconds; a node silent this long is skipped

_agent_class: Any = None


@dataclasses.dataclass(frozen=True)
class NodeReport:
    found: Discovery
    power: Power | None  # measured draw since its previous reading; None: no meter, or not asked
    at: float


class NodeAgent:
    """On its node. A synchronous actor: vendor tools block, one report at a time."""

    def __init__(self) -> None:
        self._power: PowerSource | None = None

    def report(self, with_power: bool) -> NodeReport:
        import ray

        context = ray.get_runtime_context()
        name = context.get_node_labels().get(NODE_LABEL) or context.get_node_id()
        found = discover()
        address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        inventory = dataclasses.replace(found.inventory, name=str(name), address=address)
        power = None
        if with_power:
            if self._power is None:  # no TDP: estimates are the economics report's to make
                self._power = PowerSource.detect()
            power = self._power.read()
        return NodeReport(dataclasses.replace(found, inventory=inventory), power, time.time())


def _agent() -> Any:
    global _agent_class
    if _agent_class is None:
        import ray

        _agent_class = ray.remote(num_cpus=0, max_restarts=0)(NodeAgent)
    return _agent_class


def _alive_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}  # type: ignore[no-untyped-call]


def _place_agents(node_ids: set[str]) -> dict[str, Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        node_id: _agent()
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        .remote()
        for node_id in node_ids
    }


def _kill(agent: Any) -> None:
    import ray

    ray.kill(agent)


class RayNodes:
    """The controller's side: an agent on every live Ray node, their latest reports, and each
    node's power read every `power_every_s` (a meter's reading averages over the time since
    the one before) and passed to `record_power(node, power, at)` (blocking: off the loop)."""

    def __init__(
        self,
        address: str | None,
        node_name: str,
        record_power: Callable[[str, Power, float], None],
        power_every_s: float,
        every_s: float = REPORT_EVERY_S,
    ) -> None:
        self._address, self._node_name = address, node_name
        self._record_power = record_power
        self._power_every_s = power_every_s
        self._power_at: dict[str, float] = {}  # Ray node id -> when its power was last asked
        self._agents: dict[str, Any] = {}  # Ray node id -> its agent
        self.latest: dict[str, NodeReport] = {}  # Ray node id -> its agent's last report
        self._loop = Periodic("ray node agents", every_s, self.refresh)

    def reports(self) -> list[Discovery]:
        return [report.found for report in self.latest.values()]

    async def refresh(self) -> None:
        """Runs on the event loop; only Ray's own calls go to a thread, and everything this
        object holds is changed here, never while a scrape reads it."""
        await connect_keeping_signals(self._address, self._node_name)
        alive = await asyncio.to_thread(_alive_nodes)
        for node_id in set(self._agents) - alive:  # its node is gone: so is its report
            del self._agents[node_id]
            self.latest.pop(node_id, None)
            self._power_at.pop(node_id, None)
        missing = alive - set(self._agents)
        if missing:
            self._agents.update(await asyncio.to_thread(_place_agents, missing))
        ids, now = list(self._agents), time.monotonic()
        power = {i for i in ids if now - self._power_at.get(i, -math.inf) >= self._power_every_s}
        self._power_at.update(dict.fromkeys(power, now))
        answers = await asyncio.gather(
            *(self._ask(i, i in power) for i in ids), return_exceptions=True
        )
        for node_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, NodeReport):
                self.latest[node_id] = answer
            else:  # a dead or stuck agent: a new one next time; its node's report is dropped
                log.warning("ray node %s: no report, replacing its agent: %r", node_id, answer)
                await asyncio.to_thread(_kill, self._agents.pop(node_id))
                self.latest.pop(node_id, None)
        fresh = [r for r in answers if isinstance(r, NodeReport) and r.power is not None]
        if fresh:
            await asyncio.to_thread(self._record, fresh)

    async def _ask(self, node_id: str, with_power: bool) -> NodeReport:
        report: NodeReport = await asyncio.wait_for(
            self._agents[node_id].report.remote(with_power), REPORT_TIMEOUT_S
        )
        return report

    def _record(self, reports: list[NodeReport]) -> None:
        for report in reports:
            if report.power is not None:
                self._record_power(report.found.inventory.name, report.power, report.at)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
