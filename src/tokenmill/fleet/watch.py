"""This node's inventory, kept fresh: discovery runs vendor tools (tens of milliseconds to
seconds), so it runs every so often off the event loop, never on a request or a scrape."""

import asyncio
import logging
from dataclasses import replace

from tokenmill.core.periodic import Periodic
from tokenmill.fleet.discovery import Discovery, discover

log = logging.getLogger(__name__)

REFRESH_S = 15.0


class NodeWatch:
    def __init__(self, node: str, every_s: float = REFRESH_S) -> None:
        self._node = node  # the name this node's replicas and power samples go by
        self.latest: Discovery | None = None
        self._loop = Periodic("node inventory", every_s, self.refresh)

    async def refresh(self) -> None:
        found = await asyncio.to_thread(discover)
        found = replace(found, inventory=replace(found.inventory, name=self._node))
        if self.latest is None or found.problems != self.latest.problems:
            for tool, why in found.problems.items():
                log.warning("accelerator discovery: %s: %s", tool, why)
        self.latest = found

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def device_samples(self) -> list[dict[str, object]]:
        return [] if self.latest is None else device_samples(self.latest)


def device_samples(found: Discovery) -> list[dict[str, object]]:
    """Each device's latest figures, as plain values for `observe/` (which knows no fleet)."""
    node = found.inventory.name
    return [
        {
            "node": node,
            "device": f"{d.resource}{d.index}",
            "vendor": d.vendor,
            "model": d.model,
            "healthy": d.healthy,
            "utilisation": d.utilisation,
            "memory_bytes": d.memory_gb * 1e9,
            "memory_used_bytes": None if d.memory_used_gb is None else d.memory_used_gb * 1e9,
            "power_watts": d.power_w,
            "temperature_celsius": d.temperature_c,
        }
        for d in found.inventory.devices
    ]


def fleet_nodes(local: Discovery | None, remote: list[Discovery]) -> list[Discovery]:
    """Every node once: what each node's own agent reported, and this node where none did."""
    names = {found.inventory.name for found in remote}
    mine = [local] if local is not None and local.inventory.name not in names else []
    return sorted([*mine, *remote], key=lambda found: found.inventory.name)
