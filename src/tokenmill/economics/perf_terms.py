"""Costs linear in the performance model's fitted values: seconds as a sum of coefficients
times (1 / efficiency or an overhead), plus a fixed part no fitted value scales. `perf_model`
builds TTFT and TPOT from these terms; `calibrate` solves for the values by least squares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# What a cost is linear in: 1 / efficiency for the first five, seconds for the overheads.
PARAMS = (
    "compute",
    "bandwidth",
    "decode_compute",
    "decode_attention",
    "prefill_attention",
    "step_overhead_s",
    "request_overhead_s",
)
RATES = 5  # the first five are efficiencies


@dataclass(frozen=True, slots=True)
class Cost:
    """Seconds as sum(coef[i] x value[i]) over `PARAMS`, plus `fixed` seconds that no fitted
    value scales (collectives, per-layer overheads, terms at a given efficiency)."""

    coef: tuple[float, ...] = (0.0,) * len(PARAMS)
    fixed: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        coef = tuple(a + b for a, b in zip(self.coef, other.coef, strict=True))
        return Cost(coef, self.fixed + other.fixed)

    def __sub__(self, other: Cost) -> Cost:
        return self + -1.0 * other

    def __rmul__(self, k: float) -> Cost:
        return Cost(tuple(k * a for a in self.coef), k * self.fixed)

    def at(self, values: Sequence[float]) -> float:
        return sum(a * v for a, v in zip(self.coef, values, strict=True)) + self.fixed


def term(param: str, seconds: float) -> Cost:
    """`seconds` at peak, scaled by `param`'s value (1 / efficiency, or an overhead of 1)."""
    coef = [0.0] * len(PARAMS)
    coef[PARAMS.index(param)] = seconds
    return Cost(tuple(coef))


def fixed(seconds: float) -> Cost:
    return Cost(fixed=seconds)


def at_rate(param: str, seconds_at_peak: float, rate: float | None) -> Cost:
    """A term at its own efficiency `rate` (fixed), or, when None, at `param`'s (fitted)."""
    return term(param, seconds_at_peak) if rate is None else fixed(seconds_at_peak / rate)
