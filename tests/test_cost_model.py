"""The cost model and facility data, against figures worked out by hand in the comments."""

import math
from decimal import Decimal

import pytest

from tokenmill.core.power import estimated_power, measured_power
from tokenmill.economics.cost import (
    HourCost,
    Leased,
    Mode,
    Owned,
    Rented,
    accelerator_hour_cost,
    cost_per_million_tokens,
    crf,
    energy_cost_per_hour,
    joules_per_token,
    joules_per_token_all_in,
    payback_months,
    roi,
    tokens_per_kwh,
    tokens_per_kwh_all_in,
)
from tokenmill.economics.facilities import (
    FacilityError,
    PriceBand,
    check_bands,
    default_facilities,
    loads_facilities,
)

D = Decimal


def q(x: Decimal, places: str = "0.000001") -> Decimal:
    return x.quantize(D(places))


# --- CRF ----------------------------------------------------------------------------------


def test_crf_8_percent_5_years() -> None:
    # 1.08^5 = 1.4693280768
    # 0.08 x 1.4693280768 = 0.117546246144
    # 0.117546246144 / 0.4693280768 = 0.2504564546...
    assert q(crf(D("0.08"), 5)) == D("0.250456")


def test_crf_zero_rate_is_straight_line() -> None:
    assert crf(D(0), 4) == D("0.25")  # 1/4
    assert crf(D(0), 1) == D(1)


def test_crf_one_year_repays_principal_plus_interest() -> None:
    # n = 1: r(1+r)/((1+r)-1) = 1 + r
    assert crf(D("0.10"), 1) == D("1.10")


@pytest.mark.parametrize(("rate", "years"), [(D("-0.01"), 5), (D("0.08"), 0), (D("NaN"), 5)])
def test_crf_refuses_nonsense(rate: Decimal, years: int) -> None:
    with pytest.raises(ValueError):
        crf(rate, years)


# --- accelerator-hour ---------------------------------------------------------------------


def h100_owned() -> HourCost:
    return accelerator_hour_cost(
        Owned(capex=D(30000), years=5, rate=D("0.08"), availability=D("0.95")),
        it_kw=0.7,
        pue=1.3,
        price_per_kwh=D("0.08"),
        fixed_opex_per_hour=D("0.10"),
    )


def test_h100_owned_breakdown() -> None:
    cost = h100_owned()
    assert cost.mode is Mode.OWNED
    # capital: 30,000 x 0.2504564546 = 7,513.693637 per year
    #          available hours 8,760 x 0.95 = 8,322
    #          7,513.693637 / 8,322 = 0.902871 per hour
    assert q(cost.capital) == D("0.902871")
    # energy: 0.7 kW x 1.3 PUE x 0.08 $/kWh = 0.0728 exactly (no float residue)
    assert cost.energy == D("0.0728")
    assert cost.fixed_opex == D("0.10")
    # total: 0.902871 + 0.0728 + 0.10 = 1.075671
    assert q(cost.total) == D("1.075671")
    assert cost.total == cost.capital + cost.energy + cost.fixed_opex


def test_h100_owned_per_million_tokens() -> None:
    # 1.075671 $/h at 1,000 tok/s: 1.075671 / 3,600,000 x 1e6 = 0.298798 $ per 1M tokens
    assert q(cost_per_million_tokens(h100_owned().total, 1000.0), "0.0001") == D("0.2988")


def test_full_availability_is_the_default() -> None:
    cost = accelerator_hour_cost(
        Owned(capex=D(30000), years=5, rate=D(0)), it_kw=0.0, pue=1.0, price_per_kwh=D(0)
    )
    # 30,000 / 5 = 6,000 per year; / 8,760 h = 0.684932 per hour
    assert q(cost.capital) == D("0.684932")
    assert cost.total == cost.capital


def test_leased_spreads_the_month_over_available_hours() -> None:
    cost = accelerator_hour_cost(
        Leased(per_month=D(1460), availability=D("0.5")),
        it_kw=1.0,
        pue=1.5,
        price_per_kwh=D("0.10"),
    )
    # a month is 8,760 / 12 = 730 h; half available = 365 h; 1,460 / 365 = 4.00 per hour
    assert cost.mode is Mode.LEASED
    assert cost.capital == D(4)
    # energy: 1.0 x 1.5 x 0.10 = 0.15; total 4.15
    assert cost.energy == D("0.15")
    assert cost.total == D("4.15")


def test_rented_ignores_capex_and_energy_by_default() -> None:
    cost = accelerator_hour_cost(
        Rented(per_hour=D("2.00")), it_kw=0.7, pue=1.3, price_per_kwh=D("0.08")
    )
    assert cost.mode is Mode.RENTED
    assert cost.capital == D("2.00")
    assert cost.energy == 0  # included in the rent
    assert cost.total == D("2.00")


def test_rented_bare_metal_pays_energy_on_top() -> None:
    cost = accelerator_hour_cost(
        Rented(per_hour=D("2.00"), energy_included=False),
        it_kw=0.7,
        pue=1.3,
        price_per_kwh=D("0.08"),
        fixed_opex_per_hour=D("0.05"),
    )
    # 2.00 + 0.0728 + 0.05 = 2.1228
    assert cost.total == D("2.1228")


def test_pue_multiplies_energy() -> None:
    it_only = energy_cost_per_hour(0.7, 1.0, D("0.08"))  # 0.7 x 0.08 = 0.056
    all_in = energy_cost_per_hour(0.7, 1.5, D("0.08"))  # x 1.5 = 0.084
    assert it_only == D("0.056")
    assert all_in == D("0.084")
    assert all_in == it_only * D("1.5")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pue": 0.9},  # below 1: free energy
        {"it_kw": -1.0},
        {"price_per_kwh": D("-0.01")},
        {"fixed_opex_per_hour": D("-1")},
    ],
)
def test_hour_cost_refuses_bad_inputs(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "it_kw": 0.7,
        "pue": 1.3,
        "price_per_kwh": D("0.08"),
        "fixed_opex_per_hour": D(0),
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        accelerator_hour_cost(Rented(D(2)), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("availability", [D(0), D("1.01"), D("-0.5")])
def test_availability_must_be_a_fraction(availability: Decimal) -> None:
    with pytest.raises(ValueError):
        accelerator_hour_cost(
            Owned(D(1), 1, D(0), availability), it_kw=0, pue=1, price_per_kwh=D(0)
        )


# --- cost per 1M tokens -------------------------------------------------------------------


def test_two_dollars_at_1000_tokens_per_second() -> None:
    # 2 / (1,000 x 3,600) x 1e6 = 2,000,000 / 3,600,000 = 0.5555...
    assert q(cost_per_million_tokens(D("2.00"), 1000.0), "0.0001") == D("0.5556")


def test_inferencex_h100_reference_point() -> None:
    # InferenceX H100 hyperscaler-owned 1.30 $/h at 2,600 tok/s:
    # 1.30 x 1e6 / (2,600 x 3,600) = 1,300,000 / 9,360,000 = 0.138889
    assert q(cost_per_million_tokens(D("1.30"), 2600.0)) == D("0.138889")


@pytest.mark.parametrize("tps", [0.0, -5.0, math.nan, math.inf])
def test_cost_per_token_refuses_no_throughput(tps: float) -> None:
    with pytest.raises(ValueError):
        cost_per_million_tokens(D(2), tps)


# --- energy -------------------------------------------------------------------------------


def test_joules_per_token() -> None:
    # 700 W = 700 J/s; / 1,400 tok/s = 0.5 J/token
    assert joules_per_token(700.0, 1400.0) == 0.5


def test_tokens_per_kwh() -> None:
    # 1 kWh = 3.6e6 J; / 0.5 J/token = 7.2e6 tokens
    assert tokens_per_kwh(700.0, 1400.0) == pytest.approx(7.2e6)


def test_all_in_energy_multiplies_by_pue() -> None:
    # 0.5 J/token x PUE 1.3 = 0.65 J/token; 3.6e6 / 0.65 = 5,538,461.5 tokens/kWh
    assert joules_per_token_all_in(700.0, 1400.0, 1.3) == pytest.approx(0.65)
    assert tokens_per_kwh_all_in(700.0, 1400.0, 1.3) == pytest.approx(5_538_461.538)
    with pytest.raises(ValueError):
        joules_per_token_all_in(700.0, 1400.0, 0.99)


def test_energy_refuses_zero_throughput() -> None:
    with pytest.raises(ValueError):
        joules_per_token(700.0, 0.0)


def test_estimated_power_is_labelled() -> None:
    # 700 W TDP x 0.6 = 420 W
    p = estimated_power(700.0, 0.6)
    assert p.watts == pytest.approx(420.0)
    assert p.estimated is True
    assert "estimate" in p.basis
    # with a 100 W idle floor: 100 + (700 - 100) x 0.6 = 460 W; at 0% it is the floor
    assert estimated_power(700.0, 0.6, idle_w=100.0).watts == pytest.approx(460.0)
    assert estimated_power(700.0, 0.0, idle_w=100.0).watts == 100.0
    assert measured_power(512.0).estimated is False
    with pytest.raises(ValueError):
        estimated_power(700.0, 1.5)


# --- payback and ROI ----------------------------------------------------------------------


def test_payback_months() -> None:
    # 30,000 / 1,250 a month = 24 months
    assert payback_months(D(30000), D(1250)) == D(24)
    assert payback_months(D(30000), D(0)) is None
    assert payback_months(D(30000), D(-10)) is None


def test_roi() -> None:
    # (12,500 - 10,000) / 10,000 = 0.25
    assert roi(D(12500), D(10000)) == D("0.25")
    assert roi(D(5000), D(10000)) == D("-0.5")
    with pytest.raises(ValueError):
        roi(D(1), D(0))


# --- facilities ---------------------------------------------------------------------------


def test_shipped_facilities_load_with_sources() -> None:
    book = default_facilities()
    assert set(book.cooling) == {"air", "direct_liquid", "immersion"}
    air = book.cooling["air"]
    assert air.pue.value == 1.56
    assert air.max_kw_per_rack is not None and air.max_kw_per_rack.value == 30.0
    assert "Uptime" in air.pue.source
    for kind in book.cooling.values():
        assert kind.pue.value >= 1
        assert kind.pue.source and kind.pue.date
    us = book.facility("us-industrial")
    assert us.currency == "USD"
    assert us.pue is air.pue  # no site figure: the cooling default
    assert us.electricity.daily_average() == D("0.08")
    hub = book.facility("cn-west-hub")
    assert hub.pue.value == 1.25  # the site's own figure overrides direct_liquid's 1.10
    with pytest.raises(KeyError):
        book.facility("nowhere")


def test_time_of_day_bands_average_and_lookup() -> None:
    tariff = default_facilities().facility("example-time-of-day").electricity
    # 22->7 = 9 h x 0.05 = 0.45; 7->17 = 10 h x 0.09 = 0.90; 17->22 = 5 h x 0.14 = 0.70
    # (0.45 + 0.90 + 0.70) / 24 = 2.05 / 24 = 0.085417
    assert q(tariff.daily_average()) == D("0.085417")
    assert tariff.price_at(0) == D("0.05")  # inside the wrapping night band
    assert tariff.price_at(6) == D("0.05")
    assert tariff.price_at(7) == D("0.09")  # from is inclusive
    assert tariff.price_at(16) == D("0.09")
    assert tariff.price_at(17) == D("0.14")  # to is exclusive
    assert tariff.price_at(22) == D("0.05")
    with pytest.raises(ValueError):
        tariff.price_at(24)


def test_banded_price_feeds_the_hour_cost() -> None:
    fac = default_facilities().facility("us-industrial")
    cost = accelerator_hour_cost(
        Rented(D(2), energy_included=False),
        it_kw=1.0,
        pue=fac.pue.value,
        price_per_kwh=fac.electricity.daily_average(),
    )
    # 2 + 1.0 x 1.56 x 0.08 = 2 + 0.1248 = 2.1248
    assert cost.total == D("2.1248")


COOLING = """
[cooling.air]
description = "air"
pue = { value = 1.5, source = "s", date = "2026" }
"""


def facility(electricity: str, extra: str = "") -> str:
    return (
        COOLING
        + f"""
[facility.x]
description = "x"
currency = "USD"
cooling = "air"
{extra}
[facility.x.electricity]
source = "s"
date = "2026"
{electricity}
"""
    )


@pytest.mark.parametrize(
    ("electricity", "message"),
    [
        # gap: hours 12..23 unpriced
        ('bands = [{ from_hour = 0, to_hour = 12, price_per_kwh = "0.1" }]', "no price"),
        # overlap at hour 10
        (
            'bands = [{ from_hour = 0, to_hour = 11, price_per_kwh = "0.1" },'
            ' { from_hour = 10, to_hour = 24, price_per_kwh = "0.2" }]',
            "overlaps",
        ),
        # wrapping band overlapping a day band at hour 23
        (
            'bands = [{ from_hour = 22, to_hour = 6, price_per_kwh = "0.1" },'
            ' { from_hour = 6, to_hour = 24, price_per_kwh = "0.2" }]',
            "overlaps",
        ),
        ("price_per_kwh = 0.08", "decimal strings"),  # a float price
        ('price_per_kwh = "-0.01"', ">= 0"),
        ('price_per_kwh = "abc"', "not a decimal"),
        (
            'price_per_kwh = "0.1"\n'
            'bands = [{ from_hour = 0, to_hour = 24, price_per_kwh = "0.1" }]',
            "either",
        ),
        ('bands = [{ from_hour = 0, to_hour = 25, price_per_kwh = "0.1" }]', "0..24"),
    ],
)
def test_electricity_validation(electricity: str, message: str) -> None:
    with pytest.raises(FacilityError, match=message):
        loads_facilities(facility(electricity))


def test_valid_custom_bands() -> None:
    book = loads_facilities(
        facility(
            'bands = [{ from_hour = 6, to_hour = 18, price_per_kwh = "0.12" },'
            ' { from_hour = 18, to_hour = 6, price_per_kwh = "0.06" }]'
        )
    )
    # 12 h x 0.12 + 12 h x 0.06 = 1.44 + 0.72 = 2.16; / 24 = 0.09
    assert book.facility("x").electricity.daily_average() == D("0.09")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('pue = { value = 0.95, source = "s", date = "2026" }', "PUE must be >= 1"),
        ("green_share = 1.5", r"\[0, 1\]"),
        ('colocation_per_kw_month = "150"', "colocation_source"),  # a price needs a source
        ('colocation_per_kw_month = 150\ncolocation_source = "s"', "decimal strings"),
    ],
)
def test_facility_validation(extra: str, message: str) -> None:
    with pytest.raises(FacilityError, match=message):
        loads_facilities(facility('price_per_kwh = "0.1"', extra))


def test_cooling_validation() -> None:
    bad = COOLING.replace("value = 1.5", "value = 0.9")
    with pytest.raises(FacilityError, match="PUE must be >= 1"):
        loads_facilities(bad)
    with pytest.raises(FacilityError, match="unknown 'liquid'"):
        loads_facilities(
            facility('price_per_kwh = "0.1"').replace('cooling = "air"', 'cooling = "liquid"')
        )


def test_check_bands_whole_day_band_cannot_share() -> None:
    with pytest.raises(FacilityError, match="whole-day"):
        check_bands((PriceBand(0, 24, D(1)), PriceBand(5, 6, D(2))))
