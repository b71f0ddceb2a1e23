"""How far a planner figure may be off: the band the held-out validation supports for that kind
of configuration, and whether the option lies outside anything validated.

`data/validation_bands.toml` lists the held-out published figures (issue 17's validation,
`benchmarks/planner_figures.py --write-bands`), each with its kind (dense or MoE, tensor-parallel
degree, accelerator vendor) and its speed ratio: predicted / published speed on its worst judged
metric (throughput as is, times inverted; > 1: the planner was too fast). An option's band is
the range of published / predicted speed over the held-out figures of its kind: the same
architecture, TP bucket and vendor when at least `MIN_FIGURES` exist, else the closest wider
kind (architecture and vendor, architecture and TP, architecture, everything), and the option is
flagged as extrapolating whenever its own kind has none, no held-out figure of its architecture
ran its layout (expert parallelism, a pipeline) or its part (the band is borrowed from the
vendor's others), or it rests on a guess (an interconnect the catalog lacks, a MoE whose
experts' shape is unknown, a batch beyond any validated one). A band of ten or more figures
also gives its middle: the range once a tenth of them is set aside at each end, and how many
lie within it.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

MIN_FIGURES = 2
# Below this many figures a band gives its range only: the middle 80% of fewer is the range.
MIDDLE_FIGURES = 10


@dataclass(frozen=True, slots=True)
class Validated:
    """One held-out figure, as the bands read it."""

    id: str
    architecture: str  # "dense" | "moe"
    tp: int
    vendor: str
    concurrency: int
    speed_ratio: float  # predicted / published speed, worst judged metric
    layout: str = "TP"  # perf_model.Device.layout_kind the figure ran
    accelerator: str = ""  # the catalog id of the part it ran on ("": not recorded)


@dataclass(frozen=True, slots=True)
class Band:
    """Published speed relative to the planner's, over the held-out figures of a kind."""

    low: float  # e.g. 0.6: the slowest published figure ran at 0.6x the predicted speed
    high: float
    figures: int
    scope: str  # the kind the figures were taken from, e.g. "MoE, TP8, NVIDIA"
    extrapolating: tuple[str, ...] = ()  # why the option lies outside the validated kinds
    unit: str = "held-out figure"  # what `figures` counts
    # (low, high, figures within) once the tenth of the figures at each end is set aside,
    # where there are at least MIDDLE_FIGURES: a range is set by its worst figure, this by the
    # common case.
    middle: tuple[float, float, int] | None = None

    @property
    def plus_minus(self) -> float:
        """The band's half-width as one number: the largest relative miss."""
        return max(1 - self.low, self.high - 1, 0.0)

    def text(self) -> str:
        width = _percent(self.low, self.high) if self.figures else "no held-out figure"
        middle = ""
        if self.middle:
            low, high, within = self.middle
            middle = f"; {within} of them within {_percent(low, high)}"
        where = f" ({self.scope}: {self.figures} {self.unit}{'s' * (self.figures != 1)}{middle})"
        flag = "; extrapolating: " + "; ".join(self.extrapolating) if self.extrapolating else ""
        return width + (where if self.figures else "") + flag


def _percent(low: float, high: float) -> str:
    return f"{round((low - 1) * 100):+d}%/{round((high - 1) * 100):+d}%"


def _band(speeds: Sequence[float], scope: str, reasons: tuple[str, ...],
          unit: str = "held-out figure") -> Band:  # fmt: skip
    ordered = sorted(speeds)
    middle = None
    if len(ordered) >= MIDDLE_FIGURES:
        tail = len(ordered) // 10  # set aside at each end: what is left is at least 80%
        low, high = ordered[tail], ordered[-1 - tail]
        middle = (low, high, sum(low <= x <= high for x in ordered))
    return Band(ordered[0], ordered[-1], len(ordered), scope, reasons, unit, middle)


def tp_bucket(tp: int) -> str:
    return "TP1" if tp == 1 else "TP2-4" if tp <= 4 else "TP8"


def load(text: str) -> tuple[str, tuple[Validated, ...]]:
    """(source, figures) from a validation-bands TOML."""
    doc = tomllib.loads(text)
    if doc.get("schema_version") != 1 or not isinstance(doc.get("source"), str):
        raise ValueError("validation bands: schema_version 1 and a source are required")
    figures = tuple(
        Validated(f["id"], f["architecture"], int(f["tp"]), f["vendor"], int(f["concurrency"]),
                  float(f["speed_ratio"]), f.get("layout", "TP"), f.get("accelerator", ""))
        for f in doc.get("figure", [])
    )  # fmt: skip
    if any(not (math.isfinite(f.speed_ratio) and f.speed_ratio > 0) for f in figures):
        raise ValueError("validation bands: every speed_ratio must be > 0")
    return doc["source"], figures


@functools.cache
def packaged() -> tuple[str, tuple[Validated, ...]]:
    data = resources.files("tokenmill.economics").joinpath("data/validation_bands.toml")
    return load(data.read_text("utf-8"))


@functools.cache
def calibrated_points() -> dict[str, tuple[float, ...]]:
    """Speed ratios of published load-sweep points predicted after calibrating on two other
    points of their sweep (`data/calibration_bands.toml`), by where they lay: "between" the
    calibrated loads or "beyond" them."""
    data = resources.files("tokenmill.economics").joinpath("data/calibration_bands.toml")
    doc = tomllib.loads(data.read_text("utf-8"))
    points: dict[str, list[float]] = {"between": [], "beyond": []}
    for f in doc.get("figure", []):
        points[f["where"]].append(float(f["speed_ratio"]))
    return {k: tuple(v) for k, v in points.items()}


def calibrated_band(concurrency: int, loads: tuple[int, int]) -> Band:
    """The band of an option planned on a calibration measured at `loads` (the fewest and most
    requests in flight of its runs): the published sweeps' points between their calibrated
    loads, or, for an option outside them, those beyond, flagged as extrapolating."""
    lo, hi = loads
    inside = lo <= concurrency <= hi
    speeds = [1 / r for r in calibrated_points()["between" if inside else "beyond"]]
    reasons = () if inside else (f"{concurrency} requests in flight, calibrated at {lo}-{hi}",)
    scope = "calibrated, between its loads" if inside else "calibrated, beyond its loads"
    return _band(speeds, scope, reasons, "sweep point")


def band(
    architecture: str, tp: int, vendor: str, concurrency: int, *, layout: str = "TP",
    assumptions: Sequence[str] = (), figures: Sequence[Validated] | None = None,
    accelerator: str | None = None,
) -> Band:  # fmt: skip
    """The band for an option of this kind, run in `layout` (`Device.layout_kind`) on
    `accelerator` (a catalog id; None: not checked); `assumptions` are guesses it rests on."""
    known = packaged()[1] if figures is None else figures
    arch = "MoE" if architecture == "moe" else "dense"
    bucket = tp_bucket(tp)

    def kind(same_tp: bool, same_vendor: bool) -> Callable[[Validated], bool]:
        def match(f: Validated) -> bool:
            return (f.architecture == architecture
                    and (not same_tp or tp_bucket(f.tp) == bucket)
                    and (not same_vendor or f.vendor == vendor))  # fmt: skip

        return match

    kinds = (
        (f"{arch}, {bucket}, {vendor}", kind(True, True)),
        (f"{arch}, {vendor}", kind(False, True)),
        (f"{arch}, {bucket}", kind(True, False)),
        (arch, kind(False, False)),
        ("all", lambda f: True),
    )
    reasons = list(assumptions)
    own = [f for f in known if kinds[0][1](f)]
    if not own:
        reasons.insert(0, f"no held-out figure for {kinds[0][0]}")
    elif max(f.concurrency for f in own) * 2 < concurrency:
        reasons.append(f"{concurrency} requests in flight, the most validated for "
                       f"{kinds[0][0]} is {max(f.concurrency for f in own)}")  # fmt: skip
    if not any(f.architecture == architecture and f.layout == layout for f in known):
        reasons.append(f"no held-out {arch} figure ran {layout}")
    if accelerator and not any(f.architecture == architecture and f.accelerator == accelerator
                               for f in known):  # fmt: skip
        reasons.append(f"no held-out {arch} figure ran {accelerator}")
    for scope, match in kinds:
        chosen = [f for f in known if match(f)]
        if len(chosen) >= MIN_FIGURES or (scope == "all" and chosen):
            speeds = [1 / f.speed_ratio for f in chosen]
            return _band(speeds, scope, tuple(reasons))
    return Band(1.0, 1.0, 0, "none", tuple(reasons) or ("no validation data",))
