"""Placement's filter and fit for one node: its options for one replica, scored, or the
reasons it has none (see fleet/placement.py for the whole)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokenmill.fleet.inventory import Device, NodeInventory

if TYPE_CHECKING:
    from tokenmill.fleet.placement import Demand, Held, Target

CACHED_BONUS = 10.0  # added to the score of a node that already holds the model file
Slot = tuple[str, str, int]  # node, target, device index (0 for the CPU)
Rejected = list[tuple[str | None, str]]  # (device or None for the node, reason)


@dataclass(frozen=True)
class Option:
    """A place one replica fits, scored (higher is better within a tier)."""

    node: str
    target: Target
    devices: tuple[int, ...]  # indices of `target`; empty on the CPU
    gb_per_device: float  # on the CPU: the replica's RAM
    score: float
    hardware: str  # the devices' model, or the CPU's
    cached: bool  # the node holds the model file

    @property
    def tier(self) -> tuple[int, int]:
        """One device before several (GPUStack's order), any accelerator before the CPU."""
        return (self.target == "CPU", len(self.devices))

    @property
    def tensor_parallel(self) -> int:
        return max(1, len(self.devices))


@dataclass
class Ledger:
    """What is taken so far: GB per device slot, and replicas of the model per node."""

    taken: defaultdict[Slot, float] = field(default_factory=lambda: defaultdict(float))
    replicas: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, held: Iterable[Held], model: str) -> Ledger:
        ledger = cls()
        for h in held:
            for i in h.devices or (0,):
                ledger.taken[(h.node, h.target, i)] += h.gb_per_device
            if h.model == model:
                ledger.replicas[h.node] += 1
        return ledger

    def take(self, option: Option) -> None:
        for i in option.devices or (0,):
            self.taken[(option.node, option.target, i)] += option.gb_per_device
        self.replicas[option.node] += 1

    def free(self, node: str, device: Device) -> float:
        """Memory left: what the device reports used, or what we placed there, the larger
        (a replica placed and running shows in both; one not yet started only in ours)."""
        used = max(device.memory_used_gb or 0.0, self.taken[(node, device.resource, device.index)])
        return max(0.0, device.memory_gb - used)

    def free_ram(self, node: NodeInventory) -> float:
        return max(0.0, node.cpu.memory_gb - self.taken[(node.name, "CPU", 0)])


def fit_node(demand: Demand, node: NodeInventory, ledger: Ledger) -> tuple[list[Option], Rejected]:
    """Every group of like devices on `node` that can take one replica (its best option
    each), else the CPU where allowed; with the reasons for the rest."""
    rejected: Rejected = []
    options: list[Option] = []
    if demand.resource != "CPU":
        usable = _filter(demand, node, rejected)
        for devices in _groups(usable):
            found = _fit_group(demand, node, devices, ledger, rejected)
            if found is not None:
                options.append(found)
    cpu_allowed = demand.resource == "CPU" or (demand.cpu_fallback and not options)
    if cpu_allowed:
        found = _fit_cpu(demand, node, ledger, rejected)
        if found is not None:
            options.append(found)
    return options, rejected


def _filter(demand: Demand, node: NodeInventory, rejected: Rejected) -> list[Device]:
    wanted = [d for d in node.devices if demand.resource in (None, d.resource)]
    if not wanted:
        kind = demand.resource or "accelerator"
        rejected.append((None, f"no {kind} (it has {_describe(node.devices)})"))
        return []
    usable = []
    for d in wanted:
        name = f"{d.resource}{d.index}"
        if demand.accelerators and d.catalog_id not in demand.accelerators:
            allowed = ", ".join(sorted(demand.accelerators))
            what = d.catalog_id or "not in the hardware catalog"
            rejected.append((name, f"{d.model} ({what}) is not an allowed type ({allowed})"))
        elif not d.healthy:
            rejected.append((name, f"unhealthy: {d.health}"))
        else:
            usable.append(d)
    if not usable:
        kind = demand.resource or "accelerator"
        rejected.append((None, f"none of its {len(wanted)} {kind} devices is usable"))
    return usable


def _groups(devices: list[Device]) -> list[list[Device]]:
    """Like devices together: tensor parallelism runs over one model of one kind."""
    groups: dict[tuple[str, str], list[Device]] = {}
    for d in devices:
        groups.setdefault((d.resource, d.model), []).append(d)
    return list(groups.values())


def _degrees(demand: Demand, available: int) -> list[int]:
    if demand.tensor_parallel is not None:
        return [demand.tensor_parallel]
    top = min(demand.max_devices, available)
    return [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= top] or [1]


def _fit_group(
    demand: Demand, node: NodeInventory, devices: list[Device], ledger: Ledger, rejected: Rejected
) -> Option | None:
    first = devices[0]
    label = f"{len(devices)} x {first.model}"
    degrees = _degrees(demand, len(devices))
    for degree in degrees:
        if degree > len(devices):
            rejected.append((None, f"{label}: TP {degree} needs {degree} devices"))
            return None
        need = demand.per_device_gb(first, degree)
        fits = [d for d in devices if ledger.free(node.name, d) >= need]
        if len(fits) >= degree:
            _short_devices(node, devices, need, degree, ledger, rejected)
            return _option(demand, node, devices, fits, degree, need, ledger)
    degree = degrees[-1]
    need = demand.per_device_gb(first, degree)
    what = _needs(demand, first, degree, need)
    if need > first.memory_gb:
        has = f"more than the {first.memory_gb:.1f} GB a device has"
        rejected.append((None, f"{label}: too small: {what}, {has}"))
        return None
    fits = [d for d in devices if ledger.free(node.name, d) >= need]
    short = f"{len(fits)} of them have that free"
    rejected.append((None, f"{label}: not enough free memory: {what}; {short}"))
    _short_devices(node, devices, need, degree, ledger, rejected)
    return None


def _short_devices(
    node: NodeInventory,
    devices: list[Device],
    need: float,
    degree: int,
    ledger: Ledger,
    rejected: Rejected,
) -> None:
    """A reason for each device without `need` GB free."""
    for d in devices:
        free = ledger.free(node.name, d)
        if free < need:
            short = f"{free:.1f} GB free of {d.memory_gb:.1f} GB, needs {need:.1f} GB"
            rejected.append((f"{d.resource}{d.index}", f"{short} at TP {degree}"))


def _needs(demand: Demand, device: Device, degree: int, need: float) -> str:
    at = f"at TP {degree} " if degree > 1 else ""
    parts = demand.breakdown(degree)
    if demand.reserve_share:
        reserve = demand.reserve_share * device.memory_gb
        parts += f", + {demand.reserve_share:.0%} reserve ({reserve:.1f} GB)"
    return f"{at}each device needs {need:.1f} GB ({parts})"


def _option(
    demand: Demand,
    node: NodeInventory,
    group: list[Device],
    fits: list[Device],
    degree: int,
    need: float,
    ledger: Ledger,
) -> Option:
    if demand.strategy == "binpack":  # the fullest devices that still fit
        fits.sort(key=lambda d: (ledger.free(node.name, d), d.index))
    else:
        fits.sort(key=lambda d: (-ledger.free(node.name, d), d.index))
    chosen = fits[:degree]
    total = sum(d.memory_gb for d in group)
    used = total - sum(ledger.free(node.name, d) for d in group) + need * degree
    indices = tuple(sorted(d.index for d in chosen))
    target = chosen[0].resource
    return _scored(demand, node, ledger, target, indices, need, used / total, chosen[0].model)


def _fit_cpu(
    demand: Demand, node: NodeInventory, ledger: Ledger, rejected: Rejected
) -> Option | None:
    need = demand.total_gb + demand.overhead_gb
    free = ledger.free_ram(node)
    if free < need:
        what = f"weights {demand.weights_gb:.1f} GB + KV {demand.kv_gb:.1f} GB"
        if demand.overhead_gb:
            what += f" + {demand.overhead_gb:.1f} GB overhead"
        have = f"{free:.1f} GB of RAM free of {node.cpu.memory_gb:.1f} GB"
        rejected.append(("CPU", f"{have}, needs {need:.1f} GB ({what})"))
        return None
    total = node.cpu.memory_gb
    used = total - free + need
    return _scored(demand, node, ledger, "CPU", (), need, used / total, node.cpu.model)


def _scored(
    demand: Demand,
    node: NodeInventory,
    ledger: Ledger,
    target: Target,
    devices: tuple[int, ...],
    need: float,
    used_share: float,
    hardware: str,
) -> Option:
    """binpack: 100 x the share of the node's memory (of that kind) in use after placing.
    spread: 100 x the share left free, divided by 1 + replicas of this model already there.
    Either way + CACHED_BONUS where the node holds the model file."""
    if demand.strategy == "binpack":
        score = 100 * used_share
    else:
        score = 100 * (1 - used_share) / (1 + ledger.replicas[node.name])
    cached = demand.model_file is not None and demand.model_file in node.models_cached
    if cached:
        score += CACHED_BONUS
    return Option(node.name, target, devices, need, round(score, 1), hardware, cached)


def _describe(devices: tuple[Device, ...]) -> str:
    if not devices:
        return "no accelerators"
    counts = Counter(f"{d.resource} {d.model}" for d in devices)
    return ", ".join(f"{n} x {what}" for what, n in counts.items())
