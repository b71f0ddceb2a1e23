"""`tokenmill plan`: which hardware serves a model's workload, at what cost per token.

Local computation only (no server). Imports stay light so the command answers fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenmill.cli.output import console, emit
from tokenmill.economics import planner
from tokenmill.economics.models import ModelError, ReferenceModel, custom_model, find_model
from tokenmill.economics.perf_model import Efficiency
from tokenmill.economics.planner import Demand, Option, Plan, PlanError, PlanOptions, Slo
from tokenmill.economics.planner_site import NODE_TOO_HOT, UNKNOWN_RACK
from tokenmill.economics.planner_view import view
from tokenmill.fleet.catalog import (
    Accelerator,
    CatalogError,
    PriceRange,
    Provenance,
    catalog,
    find,
)

Opt = typer.Option


def plan(
    model: Annotated[str | None, Opt(help="Reference model, e.g. llama-3.1-8b")] = None,
    params: Annotated[float | None, Opt(help="Custom model: total parameters, billions")] = None,
    active_params: Annotated[float | None, Opt(help="Custom MoE: active, billions")] = None,
    layers: Annotated[int | None, Opt(help="Custom model: layers")] = None,
    heads: Annotated[int | None, Opt(help="Custom model: attention heads")] = None,
    kv_heads: Annotated[int | None, Opt(help="Custom model: KV heads (default: heads)")] = None,
    head_dim: Annotated[int | None, Opt(help="Custom model: head dimension")] = None,
    weight_bits: Annotated[float | None, Opt(help="Bits per weight (overrides precision)")] = None,
    precision: Annotated[str | None, Opt(help="bf16, fp8, q4_1... (default: the model's)")] = None,
    rate: Annotated[float | None, Opt(help="Demand: requests per second")] = None,
    tokens_per_day: Annotated[float | None, Opt(help="Demand: input+output tokens per day")] = None,
    input_tokens: Annotated[int, Opt(min=1, help="Prompt tokens per request")] = 1000,
    output_tokens: Annotated[int, Opt(min=1, help="Output tokens per request")] = 200,
    ttft_ms: Annotated[float, Opt(help="SLO: time to first token, ms")] = 2000.0,
    tpot_ms: Annotated[float, Opt(help="SLO: time per output token, ms")] = 100.0,
    price: Annotated[str | None, Opt(help="Revenue per 1M tokens (in+out), USD, e.g. 0.20")] = None,
    facility: Annotated[str, Opt(help="Facility profile (facilities.toml)")] = "us-industrial",
    cooling: Annotated[str | None, Opt(help="Cooling type (default: the facility's)")] = None,
    acquire: Annotated[str, Opt(help="rented | owned (purchase + power)")] = "rented",
    years: Annotated[int, Opt(min=1, help="Owned: years to recover the purchase")] = 5,
    interest_rate: Annotated[str, Opt(help="Owned: yearly cost of capital, e.g. 0.08")] = "0.08",
    max_per_node: Annotated[
        int | None,
        Opt(min=1, help="Accelerators per node (max TP); default: the catalog's, 8 for most parts"),
    ] = None,
    engine: Annotated[
        str | None,
        Opt(
            help="Serving engine (vllm, sglang, tensorrt-llm, vllm-ascend), with a version to "
            "pick that release's efficiencies ('sglang 0.4.6'); default: its newest"
        ),
    ] = None,
    admission_interval: Annotated[
        int | None,
        Opt(
            min=1,
            help="Decode iterations between the engine's looks for new requests "
            "(SGLang --scheduler-recv-interval); default 1, as engines ship",
        ),
    ] = None,
    kv_cache: Annotated[
        str,
        Opt(
            help="How the engine stores the KV cache: bf16 (as engines ship), fp8 (vLLM/SGLang "
            "--kv-cache-dtype fp8; TensorRT-LLM on a ModelOpt FP8/FP4 checkpoint)"
        ),
    ] = "bf16",
    quote: Annotated[
        list[str] | None,
        Opt(help="Your price for a part, ID=USD: per hour when rented, per unit when owned"),
    ] = None,
    calibrate: Annotated[list[Path] | None, Opt(help="`tokenmill bench --out` report(s)")] = None,
    calibrated_on: Annotated[str | None, Opt(help="Catalog id the reports ran on")] = None,
    calibrated_tp: Annotated[
        int, Opt(min=1, help="Accelerators the reports' replica ran on (its TP degree)")
    ] = 1,
    calibrated_layout: Annotated[
        str, Opt(help="How that replica shared a mixture of experts: tp, tp+ep, dp+tp, dp+ep")
    ] = "tp",
    calibration_for_all: Annotated[bool, Opt(help="Apply the calibration to every option")] = False,
    json_out: Annotated[bool, Opt("--json", help="Print JSON only")] = False,
    chart: Annotated[Path | None, Opt(help="Also draw $/1M and accelerators to this .png")] = None,
) -> None:
    """Rank the catalog's accelerators for a model and workload: accelerators, parallelism,
    tokens/s (roofline), $/1M tokens, kW, racks, payback; and say why the others are out."""
    if chart is not None:
        _check_chart(chart)  # before computing: fail on a missing module, not after
    ref = _model(model, params, active_params, layers, heads, kv_heads, head_dim, precision)
    opts = PlanOptions(
        precision=precision,
        weight_bits=weight_bits,
        price_per_million=None if price is None else _decimal(price, "--price"),
        facility=facility,
        cooling=cooling,
        acquire=_acquire(acquire),
        years=years,
        interest_rate=_decimal(interest_rate, "--interest-rate"),
        max_per_node=max_per_node,
        engine=engine,
        admission_interval=admission_interval,
        kv_cache=kv_cache,
    )
    if calibrate:
        group = Calibration(calibrated_on, calibrated_tp, calibrated_layout)
        opts = _calibrated(opts, calibrate, group, calibration_for_all)
    elif calibrated_on is not None:
        raise typer.BadParameter("--calibrated-on needs --calibrate REPORT.json")
    demand = Demand(input_tokens, output_tokens, rate, tokens_per_day)
    parts = _quoted(quote or [], opts.acquire)
    try:
        result = planner.plan(
            ref, demand, Slo(ttft_ms / 1000, tpot_ms / 1000), opts, accelerators=parts
        )
    except (PlanError, ModelError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if chart is not None and result.options:
        from tokenmill.economics.planner_chart import chart as draw

        draw(result, chart)
    if json_out:
        print(json.dumps(view(result), indent=2))
        return
    _print(result)
    if chart is not None:
        console.print(f"[dim]chart written to {chart}[/]" if result.options else
                      "[dim]no option to chart[/]")  # fmt: skip


def _model(
    name: str | None, params: float | None, active: float | None, layers: int | None,
    heads: int | None, kv_heads: int | None, head_dim: int | None, precision: str | None,
) -> ReferenceModel:  # fmt: skip
    try:
        if name is not None:
            if params is not None or layers is not None or heads is not None:
                raise typer.BadParameter("give --model or a custom spec (--params...), not both")
            return find_model(name)
        if params is None or layers is None or heads is None or head_dim is None:
            raise typer.BadParameter(
                "give --model NAME, or --params, --layers, --heads and --head-dim"
            )
        if params > 100_000:
            raise typer.BadParameter(f"--params is in billions (70.6 for 70.6B), got {params:g}")
        return custom_model(
            params=params * 1e9,
            active_params=None if active is None else active * 1e9,
            layers=layers,
            attention_heads=heads,
            kv_heads=kv_heads or heads,
            head_dim=head_dim,
            precision=precision or "bf16",
        )
    except ModelError as exc:
        raise typer.BadParameter(str(exc)) from None


def _quoted(quotes: list[str], acquire: str) -> Mapping[str, Accelerator] | None:
    """The catalog with the operator's own prices in place of the reference ones: a quote in
    hand beats a press report, and fills the parts the catalog has no price for."""
    if not quotes:
        return None
    parts = dict(catalog())
    field = "rental_usd_per_hour" if acquire == "rented" else "purchase_price_usd"
    for item in quotes:
        name, sep, amount = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--quote: expected ID=USD, got {item!r}")
        try:
            acc = find(name)
        except CatalogError as exc:
            raise typer.BadParameter(f"--quote: {exc}") from None
        price = _decimal(amount, "--quote")
        provenance = Provenance("your quote (--quote)", date.today().isoformat(), "high")
        provenances = {**acc.provenances, field: provenance}
        parts[acc.id] = (
            replace(acc, rental_usd_per_hour=PriceRange(price, price), provenances=provenances)
            if acquire == "rented"
            else replace(acc, purchase_price_usd=PriceRange(price, price), provenances=provenances)
        )
    return parts


def _decimal(text: str, flag: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{flag}: not a decimal number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter(f"{flag}: must be a number >= 0, got {text!r}")
    return value


def _acquire(text: str) -> Any:
    if text not in ("rented", "owned"):
        raise typer.BadParameter(f"--acquire must be rented or owned, got {text!r}")
    return text


def _check_chart(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise typer.BadParameter(f"{path}: the chart is a PNG; name it *.png", param_hint="--chart")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise typer.BadParameter(f"cannot write into {path.parent}/", param_hint="--chart")
    from tokenmill.bench.plot import require_matplotlib  # only now: it imports the bench runner

    try:
        require_matplotlib()
    except ImportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--chart") from None


@dataclass(frozen=True)
class Calibration:
    """What the bench reports ran on: `--calibrated-on`, `-tp` and `-layout`."""

    on: str | None
    group: int
    layout: str


def _calibrated(
    opts: PlanOptions, reports: list[Path], ran: Calibration, for_all: bool
) -> PlanOptions:
    from tokenmill.economics.planner_calibration import CalibrationError, calibrate_on, loads

    if ran.on is None:
        raise typer.BadParameter("--calibrate needs --calibrated-on ID (the catalog accelerator)")
    try:
        acc = find(ran.on)
        loaded = [(str(p), _read_json(p)) for p in reports]
        eff: Efficiency = calibrate_on(
            loaded,
            acc,
            group=ran.group,
            layout=ran.layout,
            admission_interval=opts.admission_interval or 1,
            kv_cache=opts.kv_cache,
        )
    except (CatalogError, CalibrationError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if for_all:
        return replace(opts, efficiency=replace(eff, source=eff.source + ", applied to all"))
    return replace(opts, calibrated={acc.id: eff}, calibrated_loads={acc.id: loads(loaded)})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: cannot read a JSON report: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: not a bench report (expected a JSON object)")
    return data


# --------------------------------------------------------------------------------- printing


def _racks(o: Option) -> str:
    marks = {UNKNOWN_RACK: "?", NODE_TOO_HOT: "x"}
    return "/".join(marks.get(str(v), str(v)) for v in o.racks.values())


def _row(rank: int, o: Option, acquire: str, calibrated: bool) -> dict[str, str]:
    def est(label: str, text: str) -> str:
        return f"~{text}" if label in o.estimated else text

    p = o.prediction
    row = {
        "#": str(rank),
        "device": o.accelerator.id,
        "layout x repl.": f"{o.layout} x {o.replicas} = {o.accelerators}",
        "conc.": est("concurrency", str(o.concurrency)),
        "out tok/s": est("tokens/s", f"{o.output_tokens_per_s:,.0f}"),
        "TTFT ms": f"{p.ttft_s * 1000:,.0f}",
        "TPOT ms": f"{p.tpot_s * 1000:.1f}",
        "$/h": est("$/h", f"{o.usd_per_hour:,.2f}"),
        "$/1M tok": est("$/1M", f"{o.usd_per_million:.4f}"),
        "kW IT/all-in": est("kW", f"{o.it_kw:.1f}/{o.all_in_kw:.1f}"),
        "racks": est("racks", _racks(o)),
    }
    if o.band is not None:  # how far held-out published figures of this kind were off
        b = o.band
        mark = "!" if b.extrapolating else ""
        row["band"] = (f"{round((b.low - 1) * 100):+d}/{round((b.high - 1) * 100):+d}%{mark}"
                       if b.figures else f"?{mark}")  # fmt: skip
    if calibrated:
        row["efficiency"] = o.efficiency
    if o.monthly_margin is not None:
        row["margin $/mo"] = est("$/1M", f"{o.monthly_margin:,.0f}")
    if acquire == "owned" and o.monthly_margin is not None:
        months = "never" if o.payback_months is None else f"{o.payback_months:.1f}"
        row["payback mo"] = est("payback", months)
    return row


def _print(result: Plan) -> None:
    m, spec, d, site = result.model, result.spec, result.demand, result.site
    opts = result.options_used
    console.print(
        f"[bold]{m.name}[/] at {opts.precision or m.default_precision} "
        f"({spec.weight_bits:g} bits/weight): weights {spec.weight_bytes / 1e9:.4g} GB, "
        f"KV {spec.kv_bytes_per_token / 1024:.0f} KiB/token"
        + ("" if opts.kv_cache == "bf16" else f" ({opts.kv_cache} KV cache)")
        + "\n"
        f"demand {d.rate:.3g} req/s x ({d.input_tokens} in + {d.output_tokens} out) = "
        f"{d.rate * d.tokens_per_request:,.0f} tokens/s; SLO TTFT {result.slo.ttft_s * 1000:g} ms, "
        f"TPOT {result.slo.tpot_s * 1000:g} ms\n"
        f"{site.facility.name}, {site.cooling.name} cooling (PUE {site.pue:g}), "
        f"{opts.acquire} at catalog mid price (or your --quote)"
        + ("" if opts.price_per_million is None else f", revenue ${opts.price_per_million}/1M")
    )
    calibrated = any(o.efficiency != "default" for o in result.options)
    rows = [_row(i, o, opts.acquire, calibrated) for i, o in enumerate(result.options, 1)]
    emit(rows, False, title="options, cheapest per 1M tokens first", keys=2)
    console.print(
        f"[dim]racks: {'/'.join(site.book.cooling)} (? no rack-power figure, x a node exceeds "
        "it); kW at TDP, accelerators only; ~ rests on a low-confidence catalog figure "
        "(estimate)"
        + ("" if calibrated else "; efficiency: the default entry of data/efficiencies.toml")
        + "[/]"
    )
    bands = [(i, o.band) for i, o in enumerate(result.options, 1) if o.band is not None]
    if bands:
        console.print(
            "[dim]band: published speed against the planner's on held-out figures of the same "
            "kind (dense/MoE, TP degree, vendor); ! extrapolating[/]"
        )
        for i, b in bands:
            if b.extrapolating:
                console.print(f"  [dim]#{i}: {b.text()}[/]", soft_wrap=True)
    if spec.moe is not None and not opts.calibrated and result.options:
        console.print(
            "[yellow]mixture of experts: the same model on the same parts ran several-fold "
            "apart between engine releases in the published figures; measure yours "
            "(`tokenmill bench` at the load you will run, then --calibrate with "
            "--calibrated-on and --calibrated-tp) before quoting its $/1M[/]",
            soft_wrap=True,
        )
    if result.excluded:
        console.print("[bold]excluded[/]")
        for e in result.excluded:
            console.print(f"  {e.accelerator.id}: {e.reason}", soft_wrap=True)
