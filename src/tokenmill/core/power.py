"""Power draw, measured or estimated: shared by telemetry (observe/) and the cost model."""

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Power:
    """A power draw and whether it was measured or estimated; estimates must be shown as such."""

    watts: float
    estimated: bool
    basis: str


def estimated_power(tdp_w: float, utilisation: float, idle_w: float = 0.0) -> Power:
    """A linear estimate when nothing measured is at hand: idle + (TDP - idle) x utilisation.
    With no idle floor this is TDP x utilisation; real draw depends on the workload."""
    if not (math.isfinite(tdp_w) and tdp_w > 0):
        raise ValueError(f"tdp_w must be a finite number > 0, got {tdp_w!r}")
    if not (0.0 <= utilisation <= 1.0):
        raise ValueError(f"utilisation must be in [0, 1], got {utilisation!r}")
    if not (0.0 <= idle_w <= tdp_w):
        raise ValueError(f"idle_w must be in [0, TDP], got {idle_w!r}")
    watts = idle_w + (tdp_w - idle_w) * utilisation
    basis = f"estimate: idle {idle_w:g} W + (TDP {tdp_w:g} W - idle) x {utilisation:.3g}"
    return Power(watts, True, basis)


def measured_power(watts: float, basis: str = "measured") -> Power:
    if not (math.isfinite(watts) and watts >= 0):
        raise ValueError(f"watts must be >= 0, got {watts!r}")
    return Power(watts, False, basis)
