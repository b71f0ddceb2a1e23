"""A plan as plain data (JSON-ready): money as decimal strings rounded to a micro-dollar,
physics rounded to what the model can claim."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokenmill.economics.planner import Exclusion, Option, Plan
from tokenmill.economics.planner_band import Band

MICRO = Decimal("0.000001")


def money(x: Decimal | None, places: Decimal = MICRO) -> str | None:
    return None if x is None else str(x.quantize(places))


def _option(rank: int, o: Option) -> dict[str, Any]:
    p = o.prediction
    return {
        "rank": rank,
        "accelerator": o.accelerator.id,
        "name": o.accelerator.name,
        "compute_precision": o.compute_precision,
        "tensor_parallel": o.tensor_parallel,
        "layout": o.layout,
        "concurrency_per_replica": o.concurrency,
        "replicas": o.replicas,
        "accelerators": o.accelerators,
        "nodes": o.nodes,
        "ttft_ms": round(p.ttft_s * 1000, 1),
        "tpot_ms": round(p.tpot_s * 1000, 2),
        "output_tokens_per_s_per_replica": round(p.output_tokens_per_s, 1),
        "output_tokens_per_s": round(o.output_tokens_per_s, 1),
        "usd_per_accelerator_hour": money(o.usd_per_accelerator_hour),
        "usd_per_hour": money(o.usd_per_hour),
        "usd_per_million_tokens": money(o.usd_per_million),
        "usd_per_million_tokens_at_capacity": money(o.usd_per_million_at_capacity),
        "it_kw": round(o.it_kw, 3),
        "all_in_kw": round(o.all_in_kw, 3),
        "racks": dict(o.racks),
        "monthly_margin_usd": money(o.monthly_margin),
        "payback_months": money(o.payback_months, Decimal("0.1")),
        "efficiency": o.efficiency,
        "estimated": sorted(o.estimated),
        "low_confidence_figures": list(o.low_confidence),
        "uncertainty": _band(o),
    }


def _band(o: Option) -> dict[str, Any] | None:
    b = o.band
    if b is None:
        return None
    return {
        "text": b.text(),
        "published_speed_low": round(b.low, 3),  # published / predicted speed, held out
        "published_speed_high": round(b.high, 3),
        "plus_minus": round(b.plus_minus, 3),
        "published_speed_middle": _middle(b),
        "held_out_figures": b.figures,
        "scope": b.scope,
        "extrapolating": bool(b.extrapolating),
        "extrapolating_because": list(b.extrapolating),
    }


def _middle(b: Band) -> dict[str, Any] | None:
    """The band once a tenth of its figures is set aside at each end (None below
    planner_band.MIDDLE_FIGURES figures)."""
    if b.middle is None:
        return None
    low, high, figures = b.middle
    return {"low": round(low, 3), "high": round(high, 3), "figures": figures}


def _exclusion(e: Exclusion) -> dict[str, str]:
    return {"accelerator": e.accelerator.id, "kind": e.kind, "reason": e.reason}


def view(plan: Plan) -> dict[str, Any]:
    spec, d, site, opts = plan.spec, plan.demand, plan.site, plan.options_used
    return {
        "model": {
            "id": plan.model.id,
            "name": plan.model.name,
            "precision": opts.precision or plan.model.default_precision,
            "weight_bits": spec.weight_bits,
            "weights_gb": round(spec.weight_bytes / 1e9, 3),
            "kv_bytes_per_token": spec.kv_bytes_per_token,
            "kv_cache": opts.kv_cache,
        },
        "demand": {
            "requests_per_s": d.rate,
            "input_tokens": d.input_tokens,
            "output_tokens": d.output_tokens,
            "tokens_per_s": d.rate * d.tokens_per_request,
        },
        "slo": {"ttft_ms": plan.slo.ttft_s * 1000, "tpot_ms": plan.slo.tpot_s * 1000},
        "site": {
            "facility": site.facility.name,
            "cooling": site.cooling.name,
            "pue": site.pue,
            "price_per_kwh": str(site.price_per_kwh),
            "currency_of_power": site.facility.currency,
        },
        "acquire": opts.acquire,
        "price_per_million_tokens": money(opts.price_per_million),
        "options": [_option(i, o) for i, o in enumerate(plan.options, 1)],
        "excluded": [_exclusion(e) for e in plan.excluded],
    }
