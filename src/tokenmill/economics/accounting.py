"""Live accounting: what the tokens served in a window cost, by node, model, replica and
tenant, against what they earned.

Each node's cost for the window is its hour cost (cost.py) times the window's length, whether
it served or idled. The busy part is shared out among the requests in flight (time_share.py),
prefill time to input tokens and decode time to output tokens; the idle part is nobody's and
is shown on its own line, "unsold capacity". Money stays `Decimal` until it is shown.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tokenmill.core.money import PICO
from tokenmill.core.power import Power
from tokenmill.economics import cost
from tokenmill.economics.measured import Measured, NodeUse, RevenueKey, Served, measure
from tokenmill.economics.nodes import Node, node_of

__all__ = ["PowerOf", "RevenueKey", "Served", "account", "report"]

# (node, utilisation, since, until) -> its average draw over the window, if known
PowerOf = Callable[[Node, float, float, float], Power | None]
_PLACES = Decimal("0.000001")
_MILLION = 1_000_000
_EARNING = ("tenant", "model")  # revenue is known per tenant and model, not per replica


@dataclass
class _Tally:
    input_tokens: int = 0
    output_tokens: int = 0
    input_cost: Decimal = Decimal(0)
    output_cost: Decimal = Decimal(0)
    revenue_pico: int = 0
    costed: bool = False  # some cost in this currency was attributed here

    @property
    def cost(self) -> Decimal:
        return self.input_cost + self.output_cost


@dataclass
class _Book:
    """Tallies per (dimension, key, currency)."""

    rows: dict[tuple[str, str, str], _Tally] = field(default_factory=lambda: defaultdict(_Tally))

    def add(self, keys: Mapping[str, str], currency: str, **amounts: Any) -> _Tally:
        for dimension, key in keys.items():
            tally = self.rows[(dimension, key, currency)]
            for name, value in amounts.items():
                setattr(tally, name, getattr(tally, name) + value)
            tally.costed = tally.costed or "input_cost" in amounts
        return tally


def _rounded(amount: Decimal) -> Decimal:
    return amount.quantize(_PLACES)


def money(amount: Decimal) -> str:
    return str(_rounded(amount))


def per_million(amount: Decimal, tokens: int) -> str | None:
    return money(amount * _MILLION / tokens) if tokens else None


def _row(dimension: str, key: str, currency: str, t: _Tally) -> dict[str, Any]:
    row: dict[str, Any] = {
        dimension: key,
        "currency": currency,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
    }
    earns = dimension in _EARNING
    revenue = _rounded(Decimal(t.revenue_pico) / PICO)
    if earns:
        row["revenue"] = str(revenue)
    if t.costed:
        # Shown parts add up to the shown total: round the parts, then sum them.
        input_cost, output_cost = _rounded(t.input_cost), _rounded(t.output_cost)
        row |= {
            "cost": str(input_cost + output_cost),
            "input_cost": str(input_cost),
            "output_cost": str(output_cost),
            "cost_per_1m_tokens": per_million(t.cost, t.input_tokens + t.output_tokens),
            "cost_per_1m_input": per_million(t.input_cost, t.input_tokens),
            "cost_per_1m_output": per_million(t.output_cost, t.output_tokens),
        }
        if earns:
            row["gross_margin"] = str(revenue - input_cost - output_cost)
    else:
        row["cost"] = None  # served where no node cost is configured, or earned elsewhere
    return row


def _energy(power: Power | None, window_s: float, tokens: int, pue: float) -> dict[str, Any]:
    if power is None:
        return {"basis": "unknown: no power measured and no power_w or TDP for the node"}
    out: dict[str, Any] = {
        "watts": round(power.watts, 3),
        "estimated": power.estimated,
        "basis": power.basis,
        "kwh_it": power.watts * window_s / cost.JOULES_PER_KWH,
        "kwh_all_in": power.watts * window_s * pue / cost.JOULES_PER_KWH,
    }
    if tokens:
        rate = tokens / window_s  # J/token over the window: idle draw is part of the price
        out |= {
            "joules_per_token_it": cost.joules_per_token(power.watts, rate),
            "joules_per_token_all_in": cost.joules_per_token_all_in(power.watts, rate, pue),
            "tokens_per_kwh_it": cost.tokens_per_kwh(power.watts, rate),
            "tokens_per_kwh_all_in": cost.tokens_per_kwh_all_in(power.watts, rate, pue),
        }
    return out


def _acquisition(a: cost.Acquisition) -> dict[str, Any]:
    match a:
        case cost.Owned(capex, years, rate, availability):
            return {
                "mode": "owned",
                "capex": str(capex),
                "years": years,
                "rate": str(rate),
                "availability": str(availability),
                "crf": money(cost.crf(rate, years)),
            }
        case cost.Leased(per_month, availability):
            return {
                "mode": "leased",
                "per_month": str(per_month),
                "availability": str(availability),
            }
        case cost.Rented(per_hour, energy_included):
            return {"mode": "rented", "per_hour": str(per_hour), "energy_included": energy_included}
    raise AssertionError(a)


def _returns(
    node: Node, hour: cost.HourCost, revenue: Decimal, total: Decimal, hours: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"roi": money(cost.roi(revenue, total)) if total > 0 else None}
    capex = node.capex
    if capex is not None and hours > 0:
        # Capital aside, what each hour leaves over, at the window's pace, to repay the capex.
        running = (hour.energy + hour.fixed_opex) * cost.as_decimal(hours)
        monthly = (revenue - running) / cost.as_decimal(hours) * cost.HOURS_PER_MONTH
        months = cost.payback_months(capex, monthly)
        out["payback_months"] = None if months is None else str(months.quantize(Decimal("0.1")))
        out["payback_basis"] = "capex / ((revenue - energy - fixed opex) per month at this pace)"
    else:
        out["payback_months"] = None
        out["payback_basis"] = "no capex: leased or rented"
    return out


def account(
    served: Sequence[Served],
    revenue: Mapping[RevenueKey, int],
    nodes: Sequence[Node],
    since: float,
    until: float,
    power_of: PowerOf,
) -> dict[str, Any]:
    """The economics report for [since, until)."""
    if until <= since:
        raise ValueError("the window must end after it starts")
    return report(measure(served, revenue, nodes, since, until), nodes, since, until, power_of)


def report(
    measured: Measured, nodes: Sequence[Node], since: float, until: float, power_of: PowerOf
) -> dict[str, Any]:
    """The window's measure priced: each node's cost over the window, shared by busy time."""
    window_s = until - since
    if window_s <= 0:
        raise ValueError("the window must end after it starts")
    book = _Book()
    node_rows = []
    home = {dep: node_of(dep, nodes) for (_, _, dep, _) in measured.revenue}
    for node in nodes:
        use = measured.nodes.get(node.name) or NodeUse()
        utilisation = use.busy_s / window_s
        power = power_of(node, utilisation, since, until)
        pue = node.facility.pue.value
        hour = cost.accelerator_hour_cost(
            node.acquisition,
            it_kw=power.watts / 1000 if power is not None else 0.0,
            pue=pue,
            price_per_kwh=node.facility.electricity.daily_average(),
            fixed_opex_per_hour=node.fixed_opex_per_hour,
        )
        per_s = hour.total / cost.SECONDS_PER_HOUR
        currency = node.facility.currency
        for (dimension, key), u in use.by.items():
            book.add(
                {dimension: key},
                currency,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                input_cost=per_s * cost.as_decimal(u.prefill_s),
                output_cost=per_s * cost.as_decimal(u.decode_s),
            )
        total = per_s * cost.as_decimal(window_s)
        sold = per_s * cost.as_decimal(use.busy_s)
        tokens = use.tokens
        earned = sum(
            (p for (_, _, dep, cur), p in measured.revenue.items() if cur == currency
             and home[dep] is node),
            0,
        )  # fmt: skip
        node_rows.append(
            {
                "node": node.name,
                "cost_estimated": node.default_basis is not None,
                "cost_basis": node.default_basis or "node file",
                "hardware": node.hardware,
                "facility": node.facility.name,
                "currency": currency,
                "inputs": {
                    "acquisition": _acquisition(node.acquisition),
                    "pue": pue,
                    "pue_source": node.facility.pue.source,
                    "price_per_kwh": str(node.facility.electricity.daily_average()),
                    "price_source": node.facility.electricity.source,
                    "fixed_opex_per_hour": str(node.fixed_opex_per_hour),
                    "hour_cost": {
                        "capital": money(hour.capital),
                        "energy": money(hour.energy),
                        "fixed_opex": money(hour.fixed_opex),
                        "total": str(
                            sum(map(_rounded, (hour.capital, hour.energy, hour.fixed_opex)))
                        ),
                    },
                    "window_s": window_s,
                    "busy_s": use.busy_s,
                },
                "utilisation": utilisation,
                "tokens": tokens,
                "cost": money(total),
                "cost_sold": money(sold),
                "unsold_capacity": str(_rounded(total) - _rounded(sold)),
                "cost_per_1m_tokens": per_million(total, tokens),
                "cost_per_1m_tokens_if_busy": per_million(sold, tokens),
                "revenue": money(Decimal(earned) / PICO),
                "gross_margin": str(_rounded(Decimal(earned) / PICO) - _rounded(total)),
                "energy": _energy(power, window_s, tokens, pue),
                **_returns(node, hour, Decimal(earned) / PICO, total, window_s / 3600),
            }
        )
    for (tenant, model, _dep, currency), pico in measured.revenue.items():
        book.add({"tenant": tenant, "model": model}, currency, revenue_pico=pico)
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (dimension, key, currency), tally in sorted(book.rows.items()):
        by[dimension].append(_row(dimension, key, currency, tally))
    without = sorted(measured.without_node.items())
    return {
        "window": {"since": since, "until": until, "seconds": window_s},
        "nodes": node_rows,
        "by_model": by["model"],
        "by_replica": by["replica"],
        "by_tenant": by["tenant"],
        "without_node": [{"deployment": d, "tokens": n} for d, n in without],
    }
