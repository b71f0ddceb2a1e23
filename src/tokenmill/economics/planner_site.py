"""Where the planned fleet runs: the facility's power price and PUE, the cooling type's rack
power, and what one accelerator-hour costs there (via the cost model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tokenmill.economics.cost import (
    HOURS_PER_MONTH,
    HourCost,
    Owned,
    Rented,
    accelerator_hour_cost,
    as_decimal,
)
from tokenmill.economics.facilities import Cooling, Facility, FacilityBook
from tokenmill.fleet.catalog import Accelerator

CATALOG_CURRENCY = "USD"  # hardware.toml prices are in US dollars
UNKNOWN_RACK = "unknown"  # the cooling type has no published rack-power figure
NODE_TOO_HOT = "node exceeds"  # one node draws more than a rack of this type takes


class SiteError(ValueError):
    """An unknown facility or cooling type, or one the plan cannot price."""


@dataclass(frozen=True, slots=True)
class Site:
    facility: Facility
    cooling: Cooling
    pue: float
    price_per_kwh: Decimal  # time-weighted daily average: the fleet runs around the clock
    book: FacilityBook


def site_for(book: FacilityBook, facility: str, cooling: str | None, *, owned: bool) -> Site:
    try:
        fac = book.facility(facility)
    except KeyError as exc:
        raise SiteError(str(exc.args[0])) from None
    if cooling is not None and cooling not in book.cooling:
        raise SiteError(f"unknown cooling type {cooling!r}; choose from {sorted(book.cooling)}")
    kind = fac.cooling if cooling is None else book.cooling[cooling]
    # The site's own PUE holds for its own cooling; another cooling type brings its own.
    pue = fac.pue.value if kind.name == fac.cooling.name else kind.pue.value
    if owned and fac.currency != CATALOG_CURRENCY:
        raise SiteError(
            f"facility {facility!r} prices power in {fac.currency} but catalog prices are in "
            f"{CATALOG_CURRENCY}; plan owned hardware at a {CATALOG_CURRENCY} facility, or rent"
        )
    return Site(fac, kind, pue, fac.electricity.daily_average(), book)


def hour_cost(
    acc: Accelerator, acquire: Literal["rented", "owned"], site: Site, *, years: int, rate: Decimal
) -> HourCost:
    """One accelerator-hour at the catalog's mid price. Rented: the rent (cloud prices include
    power). Owned: capital recovery + energy at TDP x PUE + colocation per IT kW, if any."""
    assert acc.tdp_w is not None  # the planner filters on it
    it_kw = acc.tdp_w / 1000
    if acquire == "rented":
        assert acc.rental_usd_per_hour is not None
        return accelerator_hour_cost(Rented(acc.rental_usd_per_hour.mid), it_kw=it_kw,
                                     pue=site.pue, price_per_kwh=site.price_per_kwh)  # fmt: skip
    assert acc.purchase_price_usd is not None
    colocation = site.facility.colocation_per_kw_month or Decimal(0)
    return accelerator_hour_cost(
        Owned(acc.purchase_price_usd.mid, years, rate),
        it_kw=it_kw,
        pue=site.pue,
        price_per_kwh=site.price_per_kwh,
        fixed_opex_per_hour=colocation * as_decimal(it_kw) / HOURS_PER_MONTH,
    )


def rack_counts(book: FacilityBook, nodes: int, node_kw: float) -> dict[str, int | str]:
    """Racks the nodes need under each cooling type, by power alone (rack units, network and
    weight are not modelled)."""
    out: dict[str, int | str] = {}
    for name, kind in book.cooling.items():
        limit = kind.max_kw_per_rack
        if limit is None:
            out[name] = UNKNOWN_RACK
        elif node_kw > limit.value:
            out[name] = NODE_TOO_HOT
        else:
            out[name] = math.ceil(nodes / math.floor(limit.value / node_kw))
    return out
