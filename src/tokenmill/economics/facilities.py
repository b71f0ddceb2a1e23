"""Facilities: cooling types (default PUE, rack power) and site profiles (electricity tariff,
currency, green share, colocation), loaded from TOML and validated on load.

Every figure keeps its source and date so a report can say where a number came from.
Prices are decimal strings in the file and `Decimal` here; a float price is refused because
0.1 as a float is not 0.1.
"""

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from tokenmill.core.money import decimal_string

HOURS_PER_DAY = 24


class FacilityError(ValueError):
    """The facilities data is malformed; the message names the offending path."""


@dataclass(frozen=True, slots=True)
class Figure:
    """A number with where it came from. `low`/`high` keep a published range when `value`
    is a point chosen from it."""

    value: float
    source: str
    date: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Cooling:
    name: str
    description: str
    pue: Figure
    max_kw_per_rack: Figure | None  # None: no published figure, unknown


@dataclass(frozen=True, slots=True)
class PriceBand:
    """Hours [from_hour, to_hour) local time; from > to wraps past midnight."""

    from_hour: int
    to_hour: int
    price_per_kwh: Decimal

    @property
    def hours(self) -> int:
        return (self.to_hour - self.from_hour) % HOURS_PER_DAY or HOURS_PER_DAY

    def covers(self, hour: int) -> bool:
        return (hour - self.from_hour) % HOURS_PER_DAY < self.hours


@dataclass(frozen=True, slots=True)
class Electricity:
    bands: tuple[PriceBand, ...]  # cover 24 h exactly once (checked on load)
    source: str
    date: str

    def price_at(self, hour: int) -> Decimal:
        """The price per kWh in force during local hour `hour` (0-23)."""
        if not 0 <= hour < HOURS_PER_DAY:
            raise ValueError(f"hour must be in 0..23, got {hour}")
        return next(b.price_per_kwh for b in self.bands if b.covers(hour))

    def daily_average(self) -> Decimal:
        """Time-weighted average over a day (flat load: every hour draws the same power)."""
        return sum((b.price_per_kwh * b.hours for b in self.bands), Decimal(0)) / HOURS_PER_DAY


@dataclass(frozen=True, slots=True)
class Facility:
    name: str
    description: str
    currency: str
    cooling: Cooling
    pue: Figure  # the site's own figure if given, else the cooling type's default
    electricity: Electricity
    green_share: float | None  # share of power from renewables, 0..1; None: unknown
    colocation_per_kw_month: Decimal | None  # None: own site, no colocation fee
    colocation_source: str | None


@dataclass(frozen=True, slots=True)
class FacilityBook:
    cooling: Mapping[str, Cooling]
    facilities: Mapping[str, Facility]

    def facility(self, name: str) -> Facility:
        try:
            return self.facilities[name]
        except KeyError:
            raise KeyError(
                f"unknown facility '{name}'; choose from {sorted(self.facilities)}"
            ) from None


# --- parsing ------------------------------------------------------------------------------


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FacilityError(f"{where}: expected a table")
    return value


def _str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FacilityError(f"{where}.{key}: expected a non-empty string")
    return value


def _number(value: Any, where: str) -> float:
    # bool is an int in Python; `true` is not a number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FacilityError(f"{where}: expected a number")
    if not math.isfinite(value):
        raise FacilityError(f"{where}: must be finite")
    return float(value)


def _price(value: Any, where: str) -> Decimal:
    try:
        price = decimal_string(value, where)
    except ValueError as exc:
        raise FacilityError(str(exc)) from None
    if price < 0:
        raise FacilityError(f"{where}: price must be >= 0, got {value}")
    return price


def _figure(value: Any, where: str) -> Figure:
    t = _table(value, where)
    low = high = None
    if "range" in t:
        r = t["range"]
        if not (isinstance(r, list) and len(r) == 2):
            raise FacilityError(f"{where}.range: expected [low, high]")
        low, high = _number(r[0], f"{where}.range[0]"), _number(r[1], f"{where}.range[1]")
    figure = Figure(
        value=_number(t.get("value"), f"{where}.value"),
        source=_str(t, "source", where),
        date=_str(t, "date", where),
        low=low,
        high=high,
    )
    if low is not None and high is not None and not low <= figure.value <= high:
        raise FacilityError(f"{where}: value {figure.value} outside its range [{low}, {high}]")
    return figure


def _pue(value: Any, where: str) -> Figure:
    figure = _figure(value, where)
    # PUE is total facility power / IT power: below 1 would mean free energy.
    if figure.value < 1 or (figure.low is not None and figure.low < 1):
        raise FacilityError(f"{where}: PUE must be >= 1, got {figure.value}")
    return figure


def _cooling(name: str, value: Any) -> Cooling:
    where = f"cooling.{name}"
    t = _table(value, where)
    rack = None
    if "max_kw_per_rack" in t:
        rack = _figure(t["max_kw_per_rack"], f"{where}.max_kw_per_rack")
        if rack.value <= 0:
            raise FacilityError(f"{where}.max_kw_per_rack: must be > 0")
    return Cooling(
        name=name,
        description=_str(t, "description", where),
        pue=_pue(t.get("pue"), f"{where}.pue"),
        max_kw_per_rack=rack,
    )


def _hour(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= HOURS_PER_DAY:
        raise FacilityError(f"{where}: expected a whole hour 0..24, got {value!r}")
    return value


def check_bands(bands: tuple[PriceBand, ...], where: str = "bands") -> None:
    """Every hour of the day priced exactly once: a gap would leave an hour without a price,
    an overlap would give it two."""
    owner: list[int | None] = [None] * HOURS_PER_DAY
    for i, band in enumerate(bands):
        if band.from_hour % HOURS_PER_DAY == band.to_hour % HOURS_PER_DAY and len(bands) > 1:
            raise FacilityError(f"{where}[{i}]: a whole-day band cannot share the day")
        for hour in range(HOURS_PER_DAY):
            if band.covers(hour):
                if owner[hour] is not None:
                    raise FacilityError(
                        f"{where}[{i}]: overlaps {where}[{owner[hour]}] at hour {hour}"
                    )
                owner[hour] = i
    gaps = [h for h, o in enumerate(owner) if o is None]
    if gaps:
        raise FacilityError(f"{where}: hours {gaps} have no price; bands must cover 24 h")


def _electricity(value: Any, where: str) -> Electricity:
    t = _table(value, where)
    has_flat, has_bands = "price_per_kwh" in t, "bands" in t
    if has_flat == has_bands:
        raise FacilityError(f"{where}: give either price_per_kwh or bands, not both or neither")
    if has_flat:
        bands: tuple[PriceBand, ...] = (
            PriceBand(0, HOURS_PER_DAY, _price(t["price_per_kwh"], f"{where}.price_per_kwh")),
        )
    else:
        raw = t["bands"]
        if not isinstance(raw, list) or not raw:
            raise FacilityError(f"{where}.bands: expected a non-empty list")
        parsed = []
        for i, b in enumerate(raw):
            w = f"{where}.bands[{i}]"
            bt = _table(b, w)
            parsed.append(
                PriceBand(
                    from_hour=_hour(bt.get("from_hour"), f"{w}.from_hour"),
                    to_hour=_hour(bt.get("to_hour"), f"{w}.to_hour"),
                    price_per_kwh=_price(bt.get("price_per_kwh"), f"{w}.price_per_kwh"),
                )
            )
        bands = tuple(parsed)
    check_bands(bands, f"{where}.bands")
    return Electricity(bands=bands, source=_str(t, "source", where), date=_str(t, "date", where))


def _facility(name: str, value: Any, cooling: Mapping[str, Cooling]) -> Facility:
    where = f"facility.{name}"
    t = _table(value, where)
    cooling_name = _str(t, "cooling", where)
    if cooling_name not in cooling:
        raise FacilityError(f"{where}.cooling: unknown '{cooling_name}'; have {sorted(cooling)}")
    kind = cooling[cooling_name]
    green = None
    if "green_share" in t:
        green = _number(t["green_share"], f"{where}.green_share")
        if not 0 <= green <= 1:
            raise FacilityError(f"{where}.green_share: must be in [0, 1], got {green}")
    colo = colo_source = None
    if "colocation_per_kw_month" in t:
        colo = _price(t["colocation_per_kw_month"], f"{where}.colocation_per_kw_month")
        colo_source = _str(t, "colocation_source", where)  # a price without a source is a guess
    currency = _str(t, "currency", where)
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise FacilityError(f"{where}.currency: expected an ISO 4217 code like USD")
    return Facility(
        name=name,
        description=_str(t, "description", where),
        currency=currency,
        cooling=kind,
        pue=_pue(t["pue"], f"{where}.pue") if "pue" in t else kind.pue,
        electricity=_electricity(t.get("electricity"), f"{where}.electricity"),
        green_share=green,
        colocation_per_kw_month=colo,
        colocation_source=colo_source,
    )


def parse_facilities(data: Mapping[str, Any]) -> FacilityBook:
    """Validate parsed TOML into a FacilityBook; raises FacilityError naming the bad path."""
    cooling = {n: _cooling(n, v) for n, v in _table(data.get("cooling"), "cooling").items()}
    facilities = {
        n: _facility(n, v, cooling) for n, v in _table(data.get("facility", {}), "facility").items()
    }
    return FacilityBook(cooling=cooling, facilities=facilities)


def loads_facilities(text: str) -> FacilityBook:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FacilityError(f"not valid TOML: {e}") from None
    return parse_facilities(data)


@cache
def default_facilities() -> FacilityBook:
    """The shipped cooling types and facility profiles (data/facilities.toml)."""
    text = resources.files("tokenmill.economics").joinpath("data/facilities.toml").read_text()
    return loads_facilities(text)
