"""What a node holds: its CPU and its accelerators, as discovery found them, in one shape
whatever the vendor. Detectors (fleet/discovery) fill these; placement (fleet/placement) and
`tokenmill node inspect` read them."""

from dataclasses import dataclass, field
from typing import Literal

# The resource a device is scheduled as, on Ray and in placement: GPU (NVIDIA, AMD), NPU
# (Huawei Ascend), HPU (Intel Gaudi) are Ray's own; MLU (Cambricon) and DCU (Hygon) are
# declared as custom resources.
Resource = Literal["GPU", "NPU", "HPU", "MLU", "DCU"]
Vendor = Literal["NVIDIA", "AMD", "Huawei", "Intel", "Cambricon", "Hygon"]


@dataclass(frozen=True)
class Device:
    """One accelerator."""

    vendor: Vendor
    resource: Resource
    index: int  # as its vendor's visible-devices variable counts it
    model: str  # as the tool reports it, e.g. "NVIDIA H100 80GB HBM3"
    memory_gb: float
    catalog_id: str | None = None  # the hardware catalog entry it matches, if any
    memory_used_gb: float | None = None
    driver: str | None = None  # driver / runtime version, as the tool reports it
    healthy: bool = True
    health: str = "ok"  # why not, when not
    utilisation: float | None = None  # 0..1
    power_w: float | None = None
    temperature_c: float | None = None


@dataclass(frozen=True)
class Cpu:
    model: str
    cores: int  # logical CPUs TokenMill may use
    memory_gb: float
    isa: frozenset[str] = frozenset()  # e.g. avx2, avx512f, amx_tile
    numa_nodes: int = 1


@dataclass(frozen=True)
class NodeInventory:
    name: str
    address: str  # where its engines are reached from other machines
    cpu: Cpu
    devices: tuple[Device, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    models_cached: frozenset[str] = frozenset()  # model files already on its disk

    def of(self, resource: Resource) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.resource == resource)
