"""What a node declares to Ray when it joins a fleet (`tokenmill node join ADDRESS`): its
discovered accelerators as Ray resources, and the `ray start` command line that declares them.

GPU goes through Ray's own `--num-gpus`; NPU (Ascend) and HPU (Gaudi) are Ray's built-in
accelerator names, MLU (Cambricon) and DCU (Hygon) custom ones: all three kinds go in
`--resources`, the same way. Each catalog accelerator type found adds a resource
`accelerator_type:<catalog id>` of 1, Ray's own convention, so that a deployment can ask for a
model of accelerator and not only a kind.
"""

import json
from collections import Counter

from tokenmill.fleet.discovery import DEFAULT_ADDRESS
from tokenmill.fleet.inventory import NodeInventory

ACCELERATOR_TYPE = "accelerator_type:"


def ray_resources(inventory: NodeInventory) -> dict[str, float]:
    """The node's accelerators as Ray resources: count per kind, and 1 per catalog type."""
    kinds = Counter(d.resource for d in inventory.devices)
    types = {d.catalog_id for d in inventory.devices if d.catalog_id}
    return {**{k: float(n) for k, n in sorted(kinds.items())},
            **{ACCELERATOR_TYPE + t: 1.0 for t in sorted(types)}}  # fmt: skip


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def ray_start_argv(address: str, inventory: NodeInventory, ray: str = "ray") -> list[str]:
    """`ray start` joining the cluster at `address`, declaring what `inventory` holds. The node's
    address for other machines is passed only where one was set (TOKENMILL_NODE_ADDRESS):
    otherwise Ray finds the one that reaches the head."""
    resources = ray_resources(inventory)
    gpus = resources.pop("GPU", 0.0)
    argv = [ray, "start", f"--address={address}", f"--num-cpus={inventory.cpu.cores}"]
    if gpus:
        argv.append(f"--num-gpus={_number(gpus)}")
    if resources:
        plain = {k: _number(v) for k, v in resources.items()}
        argv.append(f"--resources={json.dumps(plain, separators=(',', ':'))}")
    if inventory.address != DEFAULT_ADDRESS:
        argv.append(f"--node-ip-address={inventory.address}")
    return argv
