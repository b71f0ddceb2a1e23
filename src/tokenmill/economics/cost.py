"""The cost model: what an accelerator-hour costs and what that makes a token cost.

Pure functions, no I/O. Money is `Decimal` throughout and is returned unrounded (28
significant digits); round once, where it is shown. Physics (kW, watts, tokens/s, PUE) may be
float; a float that meets money is converted through its shortest repr, so 0.7 kW becomes
Decimal("0.7") and not 0.6999999999999999555910790149937.

The shared formula (SemiAnalysis InferenceX and others):
    $ per 1M tokens = $/hour / (tokens/s x 3600) x 1e6
Capital recovery: CRF(r, n) = r(1+r)^n / ((1+r)^n - 1).
"""

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import assert_never

HOURS_PER_YEAR = 8760
HOURS_PER_MONTH = Decimal(HOURS_PER_YEAR) / 12  # 730: the average month, for leases
SECONDS_PER_HOUR = 3600
JOULES_PER_KWH = 3.6e6
_ZERO = Decimal(0)
_ONE = Decimal(1)


def as_decimal(x: float | int | Decimal) -> Decimal:
    """A physics figure as Decimal via its shortest repr (see module docstring)."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return Decimal(repr(x))


def _positive(name: str, x: float) -> None:
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")


def _fraction(name: str, x: Decimal) -> None:
    if not (_ZERO < x <= _ONE):
        raise ValueError(f"{name} must be in (0, 1], got {x}")


def _non_negative(name: str, x: Decimal) -> None:
    if not (x.is_finite() and x >= 0):
        raise ValueError(f"{name} must be >= 0, got {x}")


# --- capital recovery -------------------------------------------------------------------


def crf(rate: Decimal, years: int) -> Decimal:
    """Capital recovery factor: the level yearly payment that repays 1 unit of capital over
    `years` at interest `rate` (0.08 for 8%). At rate 0 it is simply 1/years."""
    if years < 1:
        raise ValueError(f"years must be >= 1, got {years}")
    if not (rate.is_finite() and rate >= 0):
        raise ValueError(f"rate must be >= 0, got {rate}")
    if rate == 0:
        return _ONE / years
    growth = (1 + rate) ** years
    return rate * growth / (growth - 1)


# --- cost of an accelerator-hour ----------------------------------------------------------


class Mode(StrEnum):
    OWNED = "owned"
    LEASED = "leased"
    RENTED = "rented"


@dataclass(frozen=True, slots=True)
class Owned:
    """Bought outright: capex recovered over `years` at `rate`, spread over the hours the
    accelerator is actually available (8760 x availability), since idle hours earn nothing."""

    capex: Decimal
    years: int
    rate: Decimal
    availability: Decimal = _ONE

    @property
    def mode(self) -> Mode:
        return Mode.OWNED


@dataclass(frozen=True, slots=True)
class Leased:
    """A monthly lease; paid whether or not the accelerator is available, so it too is
    spread over available hours. The operator pays the power."""

    per_month: Decimal
    availability: Decimal = _ONE

    @property
    def mode(self) -> Mode:
        return Mode.LEASED


@dataclass(frozen=True, slots=True)
class Rented:
    """Rented by the hour (cloud): the price is taken as is. Cloud prices usually include
    power and facility; set `energy_included=False` for bare-metal deals that bill it apart."""

    per_hour: Decimal
    energy_included: bool = True

    @property
    def mode(self) -> Mode:
        return Mode.RENTED


Acquisition = Owned | Leased | Rented


@dataclass(frozen=True, slots=True)
class HourCost:
    """One accelerator-hour, broken down; `total` = capital + energy + fixed_opex."""

    mode: Mode
    capital: Decimal  # capex recovery, lease or rental share of the hour
    energy: Decimal  # IT kW x PUE x price per kWh
    fixed_opex: Decimal  # staff, support contracts, network... per hour
    total: Decimal


def energy_cost_per_hour(it_kw: float, pue: float, price_per_kwh: Decimal) -> Decimal:
    """All-in power cost of one hour: the facility overhead scales IT power by PUE."""
    if not (math.isfinite(it_kw) and it_kw >= 0):
        raise ValueError(f"it_kw must be >= 0, got {it_kw!r}")
    if not (math.isfinite(pue) and pue >= 1):
        raise ValueError(f"PUE must be >= 1, got {pue!r}")
    _non_negative("price_per_kwh", price_per_kwh)
    return as_decimal(it_kw) * as_decimal(pue) * price_per_kwh


def accelerator_hour_cost(
    acquisition: Acquisition,
    *,
    it_kw: float,
    pue: float,
    price_per_kwh: Decimal,
    fixed_opex_per_hour: Decimal = _ZERO,
) -> HourCost:
    """What one hour of one accelerator costs, by how it was acquired."""
    _non_negative("fixed_opex_per_hour", fixed_opex_per_hour)
    energy = energy_cost_per_hour(it_kw, pue, price_per_kwh)
    match acquisition:
        case Owned(capex, years, rate, availability):
            _non_negative("capex", capex)
            _fraction("availability", availability)
            capital = capex * crf(rate, years) / (HOURS_PER_YEAR * availability)
        case Leased(per_month, availability):
            _non_negative("lease per month", per_month)
            _fraction("availability", availability)
            capital = per_month / (HOURS_PER_MONTH * availability)
        case Rented(per_hour, energy_included):
            _non_negative("rent per hour", per_hour)
            capital = per_hour
            if energy_included:
                energy = _ZERO  # already in the rent; counting it again would double it
        case _:
            assert_never(acquisition)
    return HourCost(
        mode=acquisition.mode,
        capital=capital,
        energy=energy,
        fixed_opex=fixed_opex_per_hour,
        total=capital + energy + fixed_opex_per_hour,
    )


# --- cost per token -----------------------------------------------------------------------


def cost_per_million_tokens(hour_cost: Decimal, tokens_per_s: float) -> Decimal:
    """$ per 1M tokens = $/hour / (tokens/s x 3600) x 1e6. No throughput, no price: a zero
    or negative rate is refused rather than answered with infinity."""
    _positive("tokens_per_s", tokens_per_s)
    _non_negative("hour_cost", hour_cost)
    # Multiply before dividing so the one division is the only rounding.
    return hour_cost * 1_000_000 / (as_decimal(tokens_per_s) * SECONDS_PER_HOUR)


# --- energy per token ---------------------------------------------------------------------


def joules_per_token(watts: float, tokens_per_s: float) -> float:
    """IT energy per token (W = J/s, so J/token = W / (tokens/s))."""
    _positive("tokens_per_s", tokens_per_s)
    if not (math.isfinite(watts) and watts >= 0):
        raise ValueError(f"watts must be >= 0, got {watts!r}")
    return watts / tokens_per_s


def joules_per_token_all_in(watts: float, tokens_per_s: float, pue: float) -> float:
    """Energy per token at the meter: IT energy x PUE (cooling, conversion losses)."""
    if not (math.isfinite(pue) and pue >= 1):
        raise ValueError(f"PUE must be >= 1, got {pue!r}")
    return joules_per_token(watts, tokens_per_s) * pue


def tokens_per_kwh(watts: float, tokens_per_s: float) -> float:
    """Tokens per IT kWh = 3.6e6 J / (J per token); inf when the power is zero."""
    j = joules_per_token(watts, tokens_per_s)
    return math.inf if j == 0 else JOULES_PER_KWH / j


def tokens_per_kwh_all_in(watts: float, tokens_per_s: float, pue: float) -> float:
    """Tokens per kWh at the meter (PUE included)."""
    j = joules_per_token_all_in(watts, tokens_per_s, pue)
    return math.inf if j == 0 else JOULES_PER_KWH / j


# --- returns ------------------------------------------------------------------------------


def payback_months(capex: Decimal, monthly_margin: Decimal) -> Decimal | None:
    """Months until the margin repays the capex (undiscounted); None if it never does."""
    _non_negative("capex", capex)
    if monthly_margin <= 0:
        return None
    return capex / monthly_margin


def roi(revenue: Decimal, cost: Decimal) -> Decimal:
    """Return on investment, (revenue - cost) / cost: 0.25 means 25% more back than spent."""
    if cost <= 0:
        raise ValueError(f"cost must be > 0 for an ROI, got {cost}")
    return (revenue - cost) / cost
