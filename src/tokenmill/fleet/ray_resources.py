"""What a node declares to Ray when it joins a fleet (`tokenmill node join ADDRESS`): its
discovered accelerators as Ray resources, and the `ray start` command line that declares them.

GPU goes through Ray's own `--num-gpus`; NPU (Ascend) and HPU (Gaudi) are Ray's built-in
accelerator names, MLU (Cambricon) and DCU (Hygon) custom ones: all three kinds go in
`--resources`, the same way. Each catalog accelerator type found adds a resource
`accelerator_type:<catalog id>` of 1, Ray's own convention, so that a deployment can ask for a
model of accelerator and not only a kind.
"""

import json
import re
from collections import Counter

from tokenmill.fleet.discovery import DEFAULT_ADDRESS
from tokenmill.fleet.inventory import NodeInventory

ACCELERATOR_TYPE = "accelerator_type:"
# The Ray node label a fleet node's name goes in: `tokenmill fleet` shows it, drains use it.
NODE_LABEL = "tokenmill.io/node"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")  # Ray's rule


def node_label(name: str) -> str:
    """`name` as a Ray label value, or a ValueError saying what a name may be."""
    if not _LABEL_VALUE.match(name):
        raise ValueError(
            f"node name {name!r}: 1-63 letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit (give one with --name)"
        )
    return name


def ray_resources(inventory: NodeInventory) -> dict[str, float]:
    """The node's accelerators as Ray resources: count per kind, and 1 per catalog type."""
    kinds = Counter(d.resource for d in inventory.devices)
    types = {d.catalog_id for d in inventory.devices if d.catalog_id}
    return {**{k: float(n) for k, n in sorted(kinds.items())},
            **{ACCELERATOR_TYPE + t: 1.0 for t in sorted(types)}}  # fmt: skip


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def ray_start_argv(address: str, inventory: NodeInventory, ray: str = "ray") -> list[str]:
    """`ray start` joining the cluster at `address`, declaring what `inventory` holds and its
    name (a node label). The node's
    address for other machines is passed only where one was set (TOKENMILL_NODE_ADDRESS):
    otherwise Ray finds the one that reaches the head."""
    resources = ray_resources(inventory)
    gpus = resources.pop("GPU", 0.0)
    argv = [ray, "start", f"--address={address}", f"--num-cpus={inventory.cpu.cores}",
            f"--labels={NODE_LABEL}={node_label(inventory.name)}"]  # fmt: skip
    if gpus:
        argv.append(f"--num-gpus={_number(gpus)}")
    if resources:
        plain = {k: _number(v) for k, v in resources.items()}
        argv.append(f"--resources={json.dumps(plain, separators=(',', ':'))}")
    if inventory.address != DEFAULT_ADDRESS:
        argv.append(f"--node-ip-address={inventory.address}")
    return argv
