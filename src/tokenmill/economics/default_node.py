"""The node costed when there is no node file: this machine (local_machine.py), priced as a
rented equivalent from the sourced figures in data/default_node.toml.

Without it a fresh install's economics report showed tokens and no cost at all until someone
wrote a node file. The default is an estimate and says so in every report, with the path of
the file that replaces it; an existing node file, even an empty one, always wins.
"""

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from tokenmill.core import sourced
from tokenmill.core.money import decimal_string
from tokenmill.economics.cost import Rented
from tokenmill.economics.facilities import default_facilities
from tokenmill.economics.local_machine import Machine, discover
from tokenmill.economics.nodes import Node, load_nodes

_MICRO = Decimal("0.000001")
_KEYS = frozenset({"id", "facility", "vcpu_per_hour", "memory_gib_per_hour",
                   "watts_per_logical_cpu"})  # fmt: skip


class DefaultNodeError(ValueError):
    """The shipped default node data is malformed."""


@dataclass(frozen=True, slots=True)
class Basis:
    """How a machine is priced by default, each figure with its source."""

    id: str
    facility: str
    vcpu_per_hour: Decimal
    memory_gib_per_hour: Decimal
    watts_per_logical_cpu: float
    sources: Mapping[str, sourced.Source]


class _Entry(sourced.Entry):
    error = DefaultNodeError
    file = "default node data"

    def money(self, name: str) -> Decimal:
        table = self.raw.get(name)
        if not isinstance(table, dict):
            raise self.fail(name, 'must be a table {value = "0.01", src, ...}')
        try:
            value = decimal_string(table.get("value"), name)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None
        if value <= 0:
            raise self.fail(name, f"must be positive, got {value}")
        self.cite(name, table, frozenset({"value"}))
        return value


def _basis(raw: object, index: int, sources: Mapping[str, sourced.Source]) -> Basis:
    if not isinstance(raw, dict):
        raise DefaultNodeError(f"default node data: entry #{index + 1}: must be a table")
    e = _Entry(raw, f"default #{index + 1}", sources)
    unknown = set(raw) - _KEYS
    if unknown:
        raise e.fail(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_KEYS))})")
    ident, facility = e.text("id"), e.text("facility")
    watts = e.number("watts_per_logical_cpu")
    assert ident is not None and facility is not None and watts is not None
    vcpu, memory = e.money("vcpu_per_hour"), e.money("memory_gib_per_hour")
    return Basis(ident, facility, vcpu, memory, watts, e.sources)


def load_basis(text: str) -> Basis:
    entries = sourced.load(text, _Entry, "default", _basis)
    if len(entries) != 1:
        raise DefaultNodeError(f"default node data: expected one [[default]], got {len(entries)}")
    return next(iter(entries.values()))


@functools.cache
def basis() -> Basis:
    data = resources.files("tokenmill.economics").joinpath("data/default_node.toml")
    return load_basis(data.read_text("utf-8"))


@dataclass(frozen=True, slots=True)
class DefaultNode:
    node: Node
    report: dict[str, Any]  # what the economics report says about it


def _toml_key(name: str) -> str:
    # A bare key where TOML allows one, else a quoted key (JSON's escapes are TOML's).
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _figures(b: Basis) -> dict[str, dict[str, str | None]]:
    return {
        figure: {
            "value": str(getattr(b, figure)),
            "source": s.title,
            "date": s.date,
            "note": s.note,
        }
        for figure, s in b.sources.items()
    }


def _example(name: str, b: Basis, watts: float, per_hour: Decimal) -> str:
    """A node file that reproduces the estimate: a start for the operator's own figures."""
    return (
        f'[node.{_toml_key(name)}]\nfacility = "{b.facility}"\npower_w = {watts:g}\n'
        f'deployments = ["*"]\ncost = {{ mode = "rented", per_hour = "{per_hour}", '
        "energy_included = true }\n"
    )


def default_node(
    name: str, machine: Machine, node_file: Path, b: Basis | None = None
) -> DefaultNode:
    """`machine` as node `name`, rented at `b`'s rates: its vCPUs and its memory priced apart."""
    b = b or basis()
    cpus, gib = machine.logical_cpus, machine.memory_gib
    gib = None if gib is None else gib.quantize(Decimal("0.01"))  # as shown: the sum checks
    per_hour = (b.vcpu_per_hour * cpus + b.memory_gib_per_hour * (gib or 0)).quantize(_MICRO)
    memory = "memory unknown, not priced" if gib is None else (
        f"{gib:.2f} GiB x ${b.memory_gib_per_hour}")  # fmt: skip
    rent = f"{cpus} vCPU x ${b.vcpu_per_hour} + {memory} per hour = ${per_hour}/h"
    source = b.sources["vcpu_per_hour"]
    summary = (
        f"no node file, so node {name} is this machine ({machine.describe()}) priced as if "
        f"rented, power included: {rent} ({source.title}, {source.date})"
    )
    watts = b.watts_per_logical_cpu * cpus
    node = Node(
        name=name,
        facility=default_facilities().facility(b.facility),
        acquisition=Rented(per_hour, energy_included=True),
        devices=1,
        power_w=watts,
        power_basis=f"default estimate: {b.watts_per_logical_cpu:g} W per logical CPU x {cpus}",
        idle_w=0.0,  # unknown, not guessed (default_node.toml)
        fixed_opex_per_hour=Decimal(0),
        deployments=("*",),
        hardware=None,
        default_basis=f"default estimate: {summary}",
    )
    report = {
        "node": name,
        "estimate": True,
        "basis": summary,
        "machine": machine.as_dict(),
        "per_hour": str(per_hour),
        "figures": _figures(b),
        "replace": (
            f"write {node_file} with a [node.{_toml_key(name)}] table giving what this machine "
            "really costs (rented, leased or owned: docs/economics.md); it replaces this "
            "estimate, and an empty file turns costing off"
        ),
        "node_file_example": _example(name, b, watts, per_hour),
    }
    return DefaultNode(node, report)


def nodes_or_default(path: Path, name: str) -> tuple[list[Node], dict[str, Any]]:
    """The node file's nodes or, with no file, this machine as node `name`, a labelled default
    estimate; and the report's word on where the costs came from (`node_file`,
    `default_node`)."""
    if path.exists():
        nodes = load_nodes(path)
        where = str(path) if nodes else f"{path} (no nodes in it: no costs known)"
        return nodes, {"node_file": where, "default_node": None}
    made = default_node(name, discover(), path)
    where = f"{path} (absent: this machine is costed by a default estimate)"
    return [made.node], {"node_file": where, "default_node": made.report}
