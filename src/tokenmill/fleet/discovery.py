"""What this machine holds: every vendor's detector plus the CPU, as one NodeInventory.

A detector (one module per vendor under fleet/detectors/) returns the devices its tool or
library reports: none when the tool is not installed, a DetectionError saying why when it is
installed but does not answer. Each device is matched to the hardware catalog here, once,
for every vendor alike.
"""

import dataclasses
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tokenmill.fleet.catalog import CatalogError, find
from tokenmill.fleet.detectors import amd, ascend, cambricon, gaudi, hygon, nvidia
from tokenmill.fleet.detectors.cpu import detect_cpu
from tokenmill.fleet.detectors.tool import DetectionError
from tokenmill.fleet.inventory import Device, NodeInventory

# Where this node's engines are reached from other machines; loopback until set.
ADDRESS_ENV = "TOKENMILL_NODE_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1"


class Detector(Protocol):
    @property
    def name(self) -> str: ...

    def detect(self) -> list[Device]: ...


DETECTORS: tuple[Detector, ...] = (
    nvidia.DETECTOR,
    amd.DETECTOR,
    ascend.DETECTOR,
    cambricon.DETECTOR,
    hygon.DETECTOR,
    gaudi.DETECTOR,
)


@dataclass(frozen=True)
class Discovery:
    inventory: NodeInventory
    problems: dict[str, str] = field(default_factory=dict)  # detector -> why it found nothing


def catalog_id(model: str) -> str | None:
    """The catalog entry a reported model name matches; None for hardware it does not list."""
    try:
        return find(model).id
    except CatalogError:
        return None


def discover(detectors: Sequence[Detector] = DETECTORS) -> Discovery:
    devices: list[Device] = []
    problems: dict[str, str] = {}
    for detector in detectors:
        try:
            found = detector.detect()
        except (DetectionError, ValueError, KeyError) as e:  # ValueError: output we can't parse
            problems[detector.name] = str(e) or type(e).__name__
            continue
        devices += [dataclasses.replace(d, catalog_id=catalog_id(d.model)) for d in found]
    inventory = NodeInventory(
        name=socket.gethostname(),
        address=os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS,
        cpu=detect_cpu(),
        devices=tuple(devices),
    )
    return Discovery(inventory, problems)


def local_inventory() -> NodeInventory:
    return discover().inventory


def to_json(found: Discovery) -> str:
    def plain(value: object) -> object:
        if isinstance(value, frozenset):
            return sorted(value)
        raise TypeError(f"not JSON: {type(value).__name__}")

    body = {**dataclasses.asdict(found.inventory), "problems": found.problems}
    return json.dumps(body, indent=2, default=plain)
