"""Placement: where a deployment's replicas go, and why every other node and device cannot
take one. Filter -> fit -> score, the shape of GPUStack's scheduler:

  filter  per node, the devices of the kind asked for (GPU, NPU... or the CPU), of an allowed
          catalog type, healthy; a node with none says what it has instead;
  fit     per group of like devices on a node, the smallest tensor-parallel degree (1, 2, 4...)
          at which that many devices each hold their share: (weights + KV cache) / degree +
          the engine's overhead + its reserve; the CPU when asked for, or as a fallback;
  score   one device before several, accelerators before the CPU; then binpack (fill the
          fullest node) or spread (fewest replicas of this model, then the emptiest node),
          plus a bonus for a node that already holds the model file.

Replicas are placed one at a time, each seeing the memory the ones before it took. Pure: the
caller brings the demand (economics/demand.py sizes it from the models catalog), the nodes
(fleet/discovery) and what is already held on them. Tensor parallelism spans one node only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tokenmill.fleet.inventory import Device, NodeInventory, Resource
from tokenmill.fleet.placement_fit import CACHED_BONUS, Ledger, Option, fit_node

__all__ = [
    "CACHED_BONUS",
    "Demand",
    "Held",
    "Option",
    "Placement",
    "Rejection",
    "Round",
    "Strategy",
    "Target",
    "place",
]

Strategy = Literal["spread", "binpack"]
Target = Resource | Literal["CPU"]  # what a replica runs on: a kind of accelerator, or the CPU


@dataclass(frozen=True)
class Demand:
    """What one replica of a deployment needs, and how its replicas should be laid out.

    Memory is in GB (1e9 bytes). A replica on `d` devices puts (weights + kv) / d on each, plus
    `overhead_gb` and `reserve_share` of the device's memory (activations, the runtime's own
    buffers: vLLM keeps 10% back by default). On the CPU it needs weights + kv + overhead.
    """

    model: str
    weights_gb: float
    kv_gb: float  # per replica: its context x concurrency
    overhead_gb: float = 0.0  # per device (per replica on the CPU)
    reserve_share: float = 0.0  # of each accelerator's memory; not applied to the CPU
    resource: Target | None = None  # None: any accelerator
    accelerators: frozenset[str] = frozenset()  # catalog ids allowed; empty: any
    cpu_fallback: bool = False  # when no accelerator fits, the CPU will do
    tensor_parallel: int | None = None  # a fixed degree; None: the smallest that fits
    max_devices: int = 8
    replicas: int = 1
    strategy: Strategy = "spread"
    model_file: str | None = None  # a node listing it in `models_cached` scores higher
    notes: tuple[str, ...] = ()  # how the figures were reached, for people

    def __post_init__(self) -> None:
        for name in ("weights_gb", "kv_gb", "overhead_gb"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.reserve_share < 1:
            raise ValueError("reserve_share must be in [0, 1)")
        if self.replicas < 1 or self.max_devices < 1:
            raise ValueError("replicas and max_devices must be >= 1")
        if self.tensor_parallel is not None and self.tensor_parallel < 1:
            raise ValueError("tensor_parallel must be >= 1")

    @property
    def total_gb(self) -> float:
        """Weights and KV cache, before any overhead."""
        return self.weights_gb + self.kv_gb

    def per_device_gb(self, device: Device, degree: int) -> float:
        share = self.total_gb / degree
        return share + self.overhead_gb + self.reserve_share * device.memory_gb

    def breakdown(self, degree: int) -> str:
        """'weights 141.2 GB + KV 10.7 GB, / 2 devices, + 1.0 GB overhead + 10% reserve'"""
        text = f"weights {self.weights_gb:.1f} GB + KV {self.kv_gb:.1f} GB"
        if degree > 1:
            text += f", / {degree} devices"
        if self.overhead_gb:
            text += f", + {self.overhead_gb:.1f} GB overhead"
        return text


@dataclass(frozen=True)
class Held:
    """Memory already taken on a node: a replica placed earlier (of `model`), or anything
    else TokenMill knows of. Devices are indices of `target`; empty for the CPU."""

    node: str
    target: Target
    gb_per_device: float
    devices: tuple[int, ...] = ()
    model: str | None = None


@dataclass(frozen=True)
class Rejection:
    """Why a node, or one device on it (`device` like "GPU3", or "CPU"), cannot take a replica."""

    node: str
    device: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.node} {self.device}" if self.device else self.node
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Round:
    """One replica's placement: the option chosen (None: nowhere fits), the others that fit,
    and every rejection."""

    replica: int  # 0-based
    chosen: Option | None
    also_fit: tuple[Option, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    reason: str | None = None  # why nowhere fits


@dataclass(frozen=True)
class Placement:
    demand: Demand
    rounds: tuple[Round, ...] = field(default_factory=tuple)

    @property
    def chosen(self) -> tuple[Option, ...]:
        return tuple(r.chosen for r in self.rounds if r.chosen is not None)

    @property
    def ok(self) -> bool:
        return len(self.chosen) == self.demand.replicas

    @property
    def reason(self) -> str | None:
        """Why not every replica could be placed; None when they all were."""
        return next((r.reason for r in self.rounds if r.reason is not None), None)


def place(demand: Demand, nodes: Sequence[NodeInventory], held: Iterable[Held] = ()) -> Placement:
    """Place `demand.replicas` replicas on `nodes`, one after another. Stops at the first
    replica that fits nowhere (the rest would not fit either)."""
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError("node names must be unique")
    ledger = Ledger.of(held, demand.model)
    rounds: list[Round] = []
    for replica in range(demand.replicas):
        options: list[Option] = []
        rejections: list[Rejection] = []
        for node in nodes:
            fits, rejected = fit_node(demand, node, ledger)
            options += fits
            rejections += [Rejection(node.name, d, r) for d, r in rejected]
        if not options:
            reason = _nowhere(demand, replica, nodes)
            rounds.append(Round(replica, None, (), tuple(rejections), reason))
            break
        order = {name: i for i, name in enumerate(names)}
        options.sort(key=lambda o: (o.tier, -o.score, order[o.node], o.devices))
        chosen = options[0]
        ledger.take(chosen)
        rounds.append(Round(replica, chosen, tuple(options[1:]), tuple(rejections)))
    return Placement(demand, tuple(rounds))


def _nowhere(demand: Demand, replica: int, nodes: Sequence[NodeInventory]) -> str:
    if not nodes:
        return "no nodes in the fleet"
    which = f"replica {replica + 1} of {demand.replicas}" if demand.replicas > 1 else "it"
    needs = f"weights {demand.weights_gb:.1f} GB + KV {demand.kv_gb:.1f} GB"
    if demand.overhead_gb:
        needs += f" + {demand.overhead_gb:.1f} GB overhead"
    span = (
        "" if demand.resource == "CPU" else " on one node (tensor parallelism does not span nodes)"
    )
    return f"no node can hold {which}: {demand.model} needs {needs}{span}"
