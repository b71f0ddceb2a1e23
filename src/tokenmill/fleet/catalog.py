"""Hardware catalog: reference figures for accelerators, each number with its provenance.

The data lives in ``tokenmill/fleet/data/hardware.toml`` (versioned with the code). Every
number there names a source, a date and a confidence; :func:`load` refuses the file otherwise.
TFLOPS figures are dense (no structured sparsity). Money is :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, cast

from tokenmill.core import sourced

__all__ = [
    "Accelerator",
    "CatalogError",
    "Confidence",
    "Kind",
    "PriceRange",
    "Provenance",
    "catalog",
    "find",
    "load",
]

Confidence = Literal["high", "medium", "low"]
Kind = Literal["gpu", "npu", "cpu"]

CONFIDENCES: frozenset[str] = frozenset({"high", "medium", "low"})
KINDS: frozenset[str] = frozenset({"gpu", "npu", "cpu"})
PRECISIONS: frozenset[str] = frozenset(
    {"fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp6", "fp4"}
)

_NUMBER_FIELDS = (
    "memory_gb",
    "memory_bandwidth_gbs",
    "tdp_w",
    "interconnect_gbs",
    "collective_latency_us",
    "accelerators_per_node",
)
_REQUIRED_NUMBERS = frozenset({"memory_gb", "memory_bandwidth_gbs"})
_MONEY_FIELDS = ("purchase_price_usd", "rental_usd_per_hour")
_TEXT_FIELDS = ("memory_type", "interconnect", "notes")
_ENTRY_KEYS = frozenset(
    {"id", "vendor", "name", "kind", "aliases", "tflops_dense"}
    | set(_NUMBER_FIELDS)
    | set(_MONEY_FIELDS)
    | set(_TEXT_FIELDS)
)
DEFAULT_PER_NODE = 8
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class CatalogError(ValueError):
    """The hardware catalog is malformed, or a lookup found nothing."""


@dataclass(frozen=True)
class Provenance:
    source: str
    date: str
    confidence: Confidence
    note: str | None = None


@dataclass(frozen=True)
class PriceRange:
    """A reference price: ``low == high`` for a single typical figure."""

    low: Decimal
    high: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Accelerator:
    id: str
    vendor: str
    name: str
    kind: Kind
    memory_gb: float
    memory_bandwidth_gbs: float
    tflops_dense: Mapping[str, float]
    aliases: tuple[str, ...] = ()
    memory_type: str | None = None
    tdp_w: float | None = None
    interconnect: str | None = None
    interconnect_gbs: float | None = None
    collective_latency_us: float | None = None  # a small all-reduce over the node's links
    # how many share one node's links (its scale-up domain): None, an 8-way baseboard
    accelerators_per_node: int | None = None
    purchase_price_usd: PriceRange | None = None
    rental_usd_per_hour: PriceRange | None = None
    notes: str | None = None
    provenances: Mapping[str, Provenance] = field(default_factory=dict, repr=False, compare=False)

    def provenance(self, name: str) -> Provenance:
        """Provenance of a numeric field, e.g. ``"memory_gb"`` or ``"tflops_dense.fp8"``."""
        try:
            return self.provenances[name]
        except KeyError:
            known = ", ".join(sorted(self.provenances))
            raise KeyError(f"{self.id} has no figure {name!r}; it has: {known}") from None

    @property
    def per_node(self) -> int:
        """Accelerators one node's links join (HGX and OAM baseboards, and most servers,
        hold 8)."""
        return self.accelerators_per_node or DEFAULT_PER_NODE

    def tflops(self, precision: str) -> float | None:
        """Dense TFLOPS at ``precision`` (``"bf16"``, ``"fp8"``...), or None when unknown."""
        return self.tflops_dense.get(precision.lower())


# --------------------------------------------------------------------------------- loading


class _Entry(sourced.Entry):
    """Validation context for one ``[[accelerator]]`` table: every figure also states its
    confidence."""

    error = CatalogError
    file = "hardware catalog"
    citation_keys = frozenset({"src", "date", "note", "confidence"})

    def __init__(self, raw: Mapping[str, Any], label: str, sources: Mapping[str, sourced.Source]):
        super().__init__(raw, label, sources)
        self.confidences: dict[str, Confidence] = {}

    def cite(self, name: str, table: Mapping[str, Any], values: frozenset[str]) -> None:
        super().cite(name, table, values)
        confidence = table.get("confidence")
        if confidence not in CONFIDENCES:
            raise self.fail(name, f"needs confidence in {sorted(CONFIDENCES)}, got {confidence!r}")
        self.confidences[name] = cast(Confidence, confidence)

    def provenances(self) -> dict[str, Provenance]:
        return {
            name: Provenance(s.title, s.date, self.confidences[name], s.note)
            for name, s in self.sources.items()
        }

    def money(self, name: str) -> PriceRange | None:
        table = self.raw.get(name)
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail(name, "must be a table {low, high | value, src, confidence}")
        if "value" in table:
            if "low" in table or "high" in table:
                raise self.fail(name, "give either value or low/high, not both")
            low = high = self._decimal(name, table["value"])
        else:
            low = self._decimal(name, table.get("low"))
            high = self._decimal(name, table.get("high"))
            if low > high:
                raise self.fail(name, f"low {low} is above high {high}")
        self.cite(name, table, frozenset({"value", "low", "high"}))
        return PriceRange(low, high)

    def _decimal(self, name: str, value: object) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(name, f"money must be a decimal string or integer, got {value!r}")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise self.fail(name, f"not a decimal amount: {value!r}") from None
        if not amount.is_finite() or amount <= 0:
            raise self.fail(name, f"must be positive, got {value!r}")
        return amount


def _entry(raw: object, index: int, sources: Mapping[str, sourced.Source]) -> Accelerator:
    if not isinstance(raw, dict):
        raise CatalogError(f"hardware catalog: accelerator #{index + 1}: must be a table")
    raw_id = raw.get("id")
    label = f"accelerator {raw_id!r}" if isinstance(raw_id, str) else f"accelerator #{index + 1}"
    e = _Entry(raw, label, sources)
    ident = e.text("id")
    assert ident is not None
    if not _ID_RE.match(ident):
        raise e.fail("id", "must be lowercase letters, digits and '-'")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise e.fail(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(_ENTRY_KEYS))})")
    kind = e.text("kind")
    if kind not in KINDS:
        raise e.fail("kind", f"must be one of {sorted(KINDS)}, got {kind!r}")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise e.fail("aliases", "must be a list of non-empty strings")

    numbers = {
        n: e.number(n, required=n in _REQUIRED_NUMBERS, integer=n == "accelerators_per_node")
        for n in _NUMBER_FIELDS
    }
    tflops_raw = raw.get("tflops_dense", {})
    if not isinstance(tflops_raw, dict):
        raise e.fail("tflops_dense", "must be a table of precision = {value, src, confidence}")
    tflops: dict[str, float] = {}
    for precision, table in tflops_raw.items():
        name = f"tflops_dense.{precision}"
        if precision not in PRECISIONS:
            raise e.fail(name, f"unknown precision (known: {', '.join(sorted(PRECISIONS))})")
        value = e.number(name, table)
        assert value is not None
        tflops[precision] = value
    if kind != "cpu" and not tflops:
        raise e.fail("tflops_dense", "an accelerator needs at least one precision")

    memory_gb = numbers["memory_gb"]
    bandwidth = numbers["memory_bandwidth_gbs"]
    assert memory_gb is not None and bandwidth is not None
    vendor = e.text("vendor")
    title = e.text("name")
    assert vendor is not None and title is not None
    return Accelerator(
        id=ident,
        vendor=vendor,
        name=title,
        kind=cast(Kind, kind),
        memory_gb=memory_gb,
        memory_bandwidth_gbs=bandwidth,
        tflops_dense=MappingProxyType(tflops),
        aliases=tuple(aliases),
        memory_type=e.text("memory_type", required=False),
        tdp_w=numbers["tdp_w"],
        interconnect=e.text("interconnect", required=False),
        interconnect_gbs=numbers["interconnect_gbs"],
        collective_latency_us=numbers["collective_latency_us"],
        accelerators_per_node=_whole(numbers["accelerators_per_node"]),
        purchase_price_usd=e.money("purchase_price_usd"),
        rental_usd_per_hour=e.money("rental_usd_per_hour"),
        notes=e.text("notes", required=False),
        provenances=MappingProxyType(e.provenances()),
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def load(text: str) -> dict[str, Accelerator]:
    """Parse and strictly validate catalog TOML.

    Raises :class:`CatalogError` naming the entry and field at fault.
    """
    return sourced.load(text, _Entry, "accelerator", _entry)


@functools.cache
def _packaged() -> Mapping[str, Accelerator]:
    text = resources.files("tokenmill.fleet").joinpath("data/hardware.toml").read_text("utf-8")
    return MappingProxyType(load(text))


def catalog() -> dict[str, Accelerator]:
    """The packaged catalog, id -> accelerator (parsed once; a fresh dict each call)."""
    return dict(_packaged())


# --------------------------------------------------------------------------------- matching

_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+")


def _tokens(text: str) -> tuple[str, ...]:
    """Lowercase alphanumeric runs, split at letter/digit boundaries: 'H100-SXM5' -> h 100 sxm 5."""
    return tuple(_TOKEN_RE.findall(text.lower()))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def mentions(query: str, key: str) -> bool:
    """`key`'s tokens appear contiguously in `query`'s, as `find` matches names."""
    return _contains(_tokens(query), _tokens(key))


def find(query: str, accelerators: Mapping[str, Accelerator] | None = None) -> Accelerator:
    """Find an accelerator by id, name, alias or a device name as tools report it.

    Matching is on normalized tokens: a key (id, name or alias) matches when its tokens appear
    contiguously in the query's tokens, so "NVIDIA H100 80GB HBM3" finds ``h100`` while "H200"
    does not find ``h20``. The longest matching key wins; a tie between entries is ambiguous.
    """
    accs = catalog() if accelerators is None else accelerators
    q = query.strip().lower()
    if q in accs:
        return accs[q]
    wanted = _tokens(query)
    best: dict[str, int] = {}
    for acc in accs.values():
        for key in (acc.id, acc.name, *acc.aliases):
            toks = _tokens(key)
            if _contains(wanted, toks):
                best[acc.id] = max(best.get(acc.id, 0), len(toks))
    ids = ", ".join(sorted(accs))
    if not best:
        raise CatalogError(f"no accelerator in the catalog matches {query!r}; known ids: {ids}")
    top = max(best.values())
    winners = sorted(i for i, score in best.items() if score == top)
    if len(winners) > 1:
        raise CatalogError(
            f"{query!r} is ambiguous: matches {', '.join(winners)}; known ids: {ids}"
        )
    return accs[winners[0]]
