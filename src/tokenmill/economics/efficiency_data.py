"""Efficiencies per serving engine and accelerator family, as data (`data/efficiencies.toml`).

Engines reach very different shares of the same hardware's peaks: on the published figures,
vLLM on AMD Instinct runs a TP8 decode step at batch 1 about twice as long as the bandwidth
would allow, vLLM-Ascend 0.9 pays milliseconds per layer, TensorRT-LLM on Hopper is near the
roofline. Each entry of the data file names an engine family and an accelerator vendor (or
"*"), the `Efficiency` fields it sets, and its source: a citation, or which published figures
it was fitted on (`benchmarks/planner_fit.py`, fitted on the FIT halves of the published
figures' rounds in `benchmarks/data/` only). :func:`efficiency_for` picks the most specific
entry: engine and vendor, then engine alone, then the default ("*", "*").

An entry may also say from which engine release on it holds (`since = "0.5"`): the same engine
on the same part ran DeepSeek-V3 several times faster a year later (SGLang 0.4.1 on H200 against
0.5.6 on B200, benchmarks/data rounds 2 and 4), which no one entry fits. A name with a version
("SGLang 0.4.6.post1") gets the newest entry that version has reached; a name without one
("sglang", as `tokenmill plan --engine` takes it) gets the newest entry: the release a deployment
would install today.

A fitted entry also records the architectures (dense, MoE) of its figures: a plan for a model
of another architecture on it leans on rates no figure of its kind set (`Entry.unfitted`).
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources
from types import MappingProxyType

from tokenmill.economics.perf_model import Efficiency, check_efficiency

ANY = "*"
# The Efficiency fields a data entry may set (what a fit can move).
SETTABLE = frozenset(f.name for f in fields(Efficiency)) - {"source"}
# The range a fit moves an entry's values in (benchmarks/planner_fit.py): a rate as a share of
# its peak; an overhead (a name ending in _s) in seconds, 0.1 us (nothing) to 250 ms (was 50 ms:
# SGLang 0.5.6 on 8 x B200 takes 99-166 ms to a first token of a 600-token prompt at one
# request in flight, whose prefill computes in ~3 ms).
RATE_BOUNDS = (0.005, 1.0)
OVERHEAD_BOUNDS = (1e-7, 0.25)
ARCHITECTURES = ("dense", "moe")  # what a fitted entry's figures ran (`Entry.architectures`)
_ARCHITECTURE_NAMES = {"dense": "dense", "moe": "MoE"}


def bounds(name: str) -> tuple[float, float]:
    """The range a fit moves the value `name` in."""
    return OVERHEAD_BOUNDS if name.endswith("_s") else RATE_BOUNDS


class EfficiencyDataError(ValueError):
    """The efficiency data is malformed; the message names the entry and field."""


@dataclass(frozen=True)
class Entry:
    id: str
    engine: str  # an engine family (see `engine_family`) or "*"
    vendor: str  # an accelerator vendor as the catalog writes it, or "*"
    label: str  # what a plan shows, e.g. "vLLM on AMD (fitted on 5 published figures)"
    source: str  # the citation, or "fitted on FIT ids [...] at commit ..."
    values: Mapping[str, float]
    fitted_on: tuple[str, ...] = ()
    since: tuple[int, ...] = ()  # the engine release it holds from; (): every release
    # the architectures ("dense", "moe") of the figures it was fitted on; (): not recorded
    architectures: tuple[str, ...] = ()

    def efficiency(self, base: Efficiency | None = None) -> Efficiency:
        return replace(base or Efficiency(), **self.values, source=self.label)

    def at_bounds(self) -> tuple[str, ...]:
        """The fitted values the fit left at the edge of their range (`bounds`): a rate at
        either end, an overhead at its largest (its smallest is "none", a fine answer). The
        figures asked more of that term than the range allows: the term stands in for what the
        model does not have, and a plan on the entry leans on it."""
        if not self.fitted_on:
            return ()

        def at_edge(name: str, value: float) -> bool:
            low, high = bounds(name)
            edges = (high,) if name.endswith("_s") else (low, high)
            return any(math.isclose(value, edge, rel_tol=1e-6) for edge in edges)

        return tuple(name for name, value in self.values.items() if at_edge(name, value))

    def unfitted(self, architecture: str) -> str | None:
        """Why a plan of a model of `architecture` ("dense" or "moe") on this entry extrapolates
        beyond its figures (None: it does not, or they were not recorded): rates set by MoE
        runs, where grouped expert GEMMs and routing dominate, need not hold for a dense
        model's matmuls, nor the other way round."""
        if not self.architectures or architecture in self.architectures:
            return None
        fitted = " and ".join(_ARCHITECTURE_NAMES[a] for a in self.architectures)
        return f"fitted on {fitted} figures only, not {_ARCHITECTURE_NAMES[architecture]}"


# Engine names as published figures and deployments write them -> family.
_FAMILIES = (
    (re.compile(r"tensorrt|trt-?llm|\bnim\b", re.I), "tensorrt-llm"),
    (re.compile(r"sglang", re.I), "sglang"),
    (re.compile(r"mindie", re.I), "mindie"),
    (re.compile(r"vllm[- ]ascend", re.I), "vllm-ascend"),
    (re.compile(r"vllm", re.I), "vllm"),
    (re.compile(r"\batom\b", re.I), "atom"),  # AMD's ROCm/ATOM
    (re.compile(r"llama\.?cpp|llama-server", re.I), "llama.cpp"),
)


def engine_family(engine: str | None, vendor: str | None = None) -> str | None:
    """'vLLM v0.11.0' -> 'vllm', 'TensorRT-LLM 0.16.0 (trtllm-bench)' -> 'tensorrt-llm'; vLLM
    on a Huawei part is vLLM-Ascend. None when the engine is not known."""
    if not engine:
        return None
    for pattern, family in _FAMILIES:
        if pattern.search(engine):
            if family == "vllm" and vendor == "Huawei":
                return "vllm-ascend"
            return family
    return None


_VERSION = re.compile(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?")


def engine_version(engine: str | None) -> tuple[int, ...] | None:
    """'SGLang 0.5.6.post1' -> (0, 5, 6), 'vLLM-Ascend v0.11.0rc1' -> (0, 11, 0): the first
    version written after the engine's name (None: no version written)."""
    if not engine:
        return None
    start = 0
    for pattern, _ in _FAMILIES:
        found = pattern.search(engine)
        if found:
            start = found.end()
            break
    match = _VERSION.search(engine, start)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def version_text(version: tuple[int, ...]) -> str:
    """(0, 5) -> '0.5': how a data file and a label write a release."""
    return ".".join(map(str, version))


def _since(value: object, where: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+){1,2}", value):
        raise EfficiencyDataError(f"{where}: since must be a version such as \"0.5\" or "
                                  "\"0.10.2\"")  # fmt: skip
    return tuple(int(part) for part in value.split("."))


def _entry(raw: object, index: int) -> Entry:
    where = f"efficiencies: entry #{index + 1}"
    if not isinstance(raw, dict):
        raise EfficiencyDataError(f"{where}: must be a table")
    known = {
        "id",
        "engine",
        "vendor",
        "label",
        "source",
        "values",
        "fitted_on",
        "since",
        "architectures",
    }
    unknown = set(raw) - known
    if unknown:
        raise EfficiencyDataError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    text = {}
    for key in ("id", "engine", "vendor", "label", "source"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise EfficiencyDataError(f"{where}: field {key!r} must be a non-empty string")
        text[key] = value
    values = raw.get("values")
    if not isinstance(values, dict):
        raise EfficiencyDataError(f"{where}: field 'values' must be a table")
    for name, value in values.items():
        if name not in SETTABLE:
            raise EfficiencyDataError(f"{where}: values.{name}: not an Efficiency field")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise EfficiencyDataError(f"{where}: values.{name} must be a number >= 0")
    fitted_on = raw.get("fitted_on", [])
    if not isinstance(fitted_on, list) or not all(isinstance(i, str) for i in fitted_on):
        raise EfficiencyDataError(f"{where}: fitted_on must be a list of figure ids")
    since = _since(raw.get("since"), where)
    if since and text["engine"] == ANY:
        raise EfficiencyDataError(f"{where}: since needs an engine, not {ANY!r}")
    architectures = raw.get("architectures", [])
    if not isinstance(architectures, list) or not set(architectures) <= set(ARCHITECTURES):
        raise EfficiencyDataError(f"{where}: architectures must be a list of "
                                  f"{' or '.join(map(repr, ARCHITECTURES))}")  # fmt: skip
    if architectures and not fitted_on:
        raise EfficiencyDataError(f"{where}: architectures are those of fitted_on's figures; "
                                  "there are none")  # fmt: skip
    entry = Entry(**text, values=MappingProxyType(dict(values)), fitted_on=tuple(fitted_on),
                  since=since, architectures=tuple(sorted(set(architectures))))  # fmt: skip
    try:
        check_efficiency(entry.efficiency())  # the values make a valid Efficiency
    except (TypeError, ValueError) as exc:
        raise EfficiencyDataError(f"{where}: {exc}") from None
    return entry


def load(text: str) -> tuple[Entry, ...]:
    """Parse and validate efficiencies TOML: a default entry ("*", "*") is required."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EfficiencyDataError(f"efficiencies: not valid TOML: {exc}") from None
    if doc.get("schema_version") != 1:
        raise EfficiencyDataError("efficiencies: schema_version must be 1")
    raw = doc.get("efficiency")
    if not isinstance(raw, list) or not raw:
        raise EfficiencyDataError("efficiencies: no [[efficiency]] entries")
    entries = tuple(_entry(r, i) for i, r in enumerate(raw))
    keys = [(e.engine, e.vendor) for e in entries]
    releases = [(e.engine, e.vendor, e.since) for e in entries]
    if len(set(releases)) != len(releases) or len({e.id for e in entries}) != len(entries):
        raise EfficiencyDataError("efficiencies: duplicate id or (engine, vendor, since)")
    if (ANY, ANY) not in keys:
        raise EfficiencyDataError('efficiencies: a default entry (engine "*", vendor "*") '
                                  "is required")  # fmt: skip
    return entries


@functools.cache
def packaged() -> tuple[Entry, ...]:
    text = resources.files("tokenmill.economics").joinpath("data/efficiencies.toml")
    return load(text.read_text("utf-8"))


def pick(
    entries: Sequence[Entry], engine: str | None, vendor: str | None,
    version: tuple[int, ...] | None = None,
) -> Entry:  # fmt: skip
    """The most specific entry for an engine family and vendor, of the newest release `version`
    has reached (None: the newest release)."""
    for key in ((engine, vendor), (engine, ANY), (ANY, ANY)):
        reached = [e for e in entries if (e.engine, e.vendor) == key
                   and (version is None or e.since <= version)]  # fmt: skip
        if reached:
            return max(reached, key=lambda e: e.since)
    raise EfficiencyDataError("efficiencies: no default entry")  # load() refuses this


def entry_for(
    engine: str | None, vendor: str | None, entries: Sequence[Entry] | None = None,
    version: tuple[int, ...] | None = None,
) -> Entry:  # fmt: skip
    """The entry for `engine` (a name as written, with or without its version, or a family) on
    a `vendor`'s part; `version`, the release when the name writes none."""
    family = engine_family(engine, vendor) or engine
    return pick(entries if entries is not None else packaged(), family, vendor,
                engine_version(engine) or version)  # fmt: skip


def efficiency_for(
    engine: str | None, vendor: str | None, entries: Sequence[Entry] | None = None,
    version: tuple[int, ...] | None = None,
) -> Efficiency:  # fmt: skip
    """The efficiencies of `entry_for`'s entry."""
    return entry_for(engine, vendor, entries, version).efficiency()
