"""What each node costs: the operator's own figures, read from a TOML file.

```toml
[node.local]
facility = "us-industrial"          # a shipped facility profile (facilities.toml)
hardware = "cpu-2s-epyc-9654"       # optional: a catalog id, for TDP when power is not given
devices = 1                         # accelerators (or CPU servers) of that kind in the node
power_w = 65                        # optional: the node's full-load draw (default: TDP x devices)
idle_w = 20                         # optional: its idle draw, for the utilisation estimate
deployments = ["*"]                 # which deployments run here (glob patterns)
fixed_opex_per_hour = "0.01"        # staff, support, network: a decimal string
cost = { mode = "rented", per_hour = "0.0875", energy_included = true }
# cost = { mode = "owned", capex = "12000", years = 4, rate = "0.08", availability = "0.95" }
# cost = { mode = "leased", per_month = "900" }
```

A deployment belongs to the first node whose pattern matches it, in file order; one that no
node claims has no known cost, and the accounting says so rather than guessing one. With no
file at all, the report costs this machine by a labelled default estimate (default_node.py).
"""

import fnmatch
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenmill.core.money import decimal_string
from tokenmill.economics.cost import Acquisition, Leased, Owned, Rented
from tokenmill.economics.facilities import Facility, FacilityBook, default_facilities
from tokenmill.fleet import catalog


class NodeConfigError(ValueError):
    """The node file is malformed; the message names the offending path."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    facility: Facility
    acquisition: Acquisition
    devices: int
    power_w: float | None  # full-load draw of the whole node; None: unknown
    power_basis: str  # where power_w came from
    idle_w: float
    fixed_opex_per_hour: Decimal
    deployments: tuple[str, ...]
    hardware: str | None  # catalog id
    # None: the operator's figures (the node file). Else why they are a default estimate.
    default_basis: str | None = None

    def runs(self, deployment: str) -> bool:
        return any(fnmatch.fnmatchcase(deployment, p) for p in self.deployments)

    @property
    def capex(self) -> Decimal | None:
        return self.acquisition.capex if isinstance(self.acquisition, Owned) else None


def _money(t: Mapping[str, Any], key: str, where: str) -> Decimal:
    try:
        value = decimal_string(t.get(key), f"{where}.{key}")
    except ValueError as exc:
        raise NodeConfigError(str(exc)) from None
    if value < 0:
        raise NodeConfigError(f"{where}.{key}: must be >= 0, got {value}")
    return value


def _share(t: Mapping[str, Any], key: str, where: str) -> Decimal:
    if key not in t:
        return Decimal(1)
    value = _money(t, key, where)  # a decimal string too: it divides money
    if not 0 < value <= 1:
        raise NodeConfigError(f"{where}.{key}: must be in (0, 1], got {value}")
    return value


def _number(t: Mapping[str, Any], key: str, where: str) -> float | None:
    value = t.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise NodeConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if value < 0:
        raise NodeConfigError(f"{where}.{key}: must be >= 0, got {value}")
    return float(value)


def _acquisition(value: Any, where: str) -> Acquisition:
    if not isinstance(value, Mapping):
        raise NodeConfigError(f'{where}: expected a table like {{ mode = "rented", ... }}')
    mode = value.get("mode")
    if mode == "rented":
        included = value.get("energy_included", True)
        if not isinstance(included, bool):
            raise NodeConfigError(f"{where}.energy_included: expected true or false")
        return Rented(_money(value, "per_hour", where), included)
    if mode == "leased":
        return Leased(_money(value, "per_month", where), _share(value, "availability", where))
    if mode == "owned":
        years, rate = value.get("years"), _money(value, "rate", where)
        if isinstance(years, bool) or not isinstance(years, int) or years < 1:
            raise NodeConfigError(f"{where}.years: expected a whole number >= 1, got {years!r}")
        return Owned(
            _money(value, "capex", where), years, rate, _share(value, "availability", where)
        )
    raise NodeConfigError(f"{where}.mode: expected owned, leased or rented, got {mode!r}")


def _power(
    t: Mapping[str, Any], where: str, hardware: str | None, devices: int
) -> tuple[float | None, str]:
    given = _number(t, "power_w", where)
    if given is not None:
        return given, "power_w given for the node"
    if hardware is not None:
        tdp = catalog.catalog()[hardware].tdp_w
        if tdp is not None:
            return tdp * devices, f"catalog TDP of {hardware} x {devices}"
    return None, "unknown: give power_w or a catalog hardware id with a TDP"


def _node(name: str, value: Any, book: FacilityBook) -> Node:
    where = f"node.{name}"
    if not isinstance(value, Mapping):
        raise NodeConfigError(f"{where}: expected a table")
    unknown = set(value) - {
        "facility", "hardware", "devices", "power_w", "idle_w", "deployments",
        "fixed_opex_per_hour", "cost",
    }  # fmt: skip
    if unknown:
        raise NodeConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        facility = book.facility(str(value.get("facility", "")))
    except KeyError as exc:
        raise NodeConfigError(f"{where}.facility: {exc.args[0]}") from None
    hardware = value.get("hardware")
    if hardware is not None:
        try:
            hardware = catalog.find(str(hardware)).id
        except catalog.CatalogError as exc:
            raise NodeConfigError(f"{where}.hardware: {exc}") from None
    devices = value.get("devices", 1)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise NodeConfigError(f"{where}.devices: expected a whole number >= 1, got {devices!r}")
    power_w, basis = _power(value, where, hardware, devices)
    idle_w = _number(value, "idle_w", where) or 0.0
    if power_w is not None and idle_w > power_w:
        raise NodeConfigError(f"{where}.idle_w: {idle_w} W is above the full-load {power_w} W")
    patterns = value.get("deployments", ["*"])
    if not (isinstance(patterns, list) and patterns and all(isinstance(p, str) for p in patterns)):
        raise NodeConfigError(f'{where}.deployments: expected a list of patterns like ["*"]')
    opex = _money(value, "fixed_opex_per_hour", where) if "fixed_opex_per_hour" in value else None
    return Node(
        name=name,
        facility=facility,
        acquisition=_acquisition(value.get("cost"), f"{where}.cost"),
        devices=devices,
        power_w=power_w,
        power_basis=basis,
        idle_w=idle_w,
        fixed_opex_per_hour=opex if opex is not None else Decimal(0),
        deployments=tuple(patterns),
        hardware=hardware,
    )


def parse_nodes(data: Mapping[str, Any], book: FacilityBook | None = None) -> list[Node]:
    table = data.get("node", {})
    if not isinstance(table, Mapping):
        raise NodeConfigError("node: expected tables [node.<name>]")
    return [_node(name, value, book or default_facilities()) for name, value in table.items()]


def load_nodes(path: Path) -> list[Node]:
    """The nodes in `path`; no file means no node costs are known (an empty list)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        return parse_nodes(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"{path}: not valid TOML: {exc}") from None
    except NodeConfigError as exc:
        raise NodeConfigError(f"{path}: {exc}") from None


def node_of(deployment: str, nodes: Sequence[Node]) -> Node | None:
    return next((n for n in nodes if n.runs(deployment)), None)
