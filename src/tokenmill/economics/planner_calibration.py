"""Calibrating the planner's roofline on measured runs: `tokenmill bench --out` reports in,
one `Efficiency` out, labelled with what it was fitted on."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tokenmill.economics import perf_model
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import FORMATS, ModelError, find_model
from tokenmill.economics.perf_model import Efficiency, MeasuredRun, Workload
from tokenmill.economics.planner import KV_CACHE_BITS, device
from tokenmill.fleet.catalog import Accelerator

_CLOSED_LOOP = re.compile(r"closed loop, (\d+) in flight")


class CalibrationError(ValueError):
    """A bench report cannot be used to calibrate; the message names the report and field."""


def _number(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CalibrationError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def measured_run(report: Mapping[str, Any], where: str) -> MeasuredRun:
    """A bench report summarised: p50 TTFT and TPOT, output tokens/s, mean request shape,
    and the concurrency (closed loop: as run; open loop: Little's law, rate x p50 latency)."""
    summary = report.get("summary")
    if not isinstance(summary, dict):
        raise CalibrationError(f"{where}: not a `tokenmill bench --out` report (no summary)")
    ok = int(_number(summary, "ok", where))
    if ok == 0:
        raise CalibrationError(f"{where}: no request succeeded; nothing was measured")
    tenants = summary.get("tenants")
    if not isinstance(tenants, dict) or not tenants:
        raise CalibrationError(f"{where}: summary.tenants is missing")
    prompt = sum(_number(t, "prompt_tokens", where) for t in tenants.values())
    completion = sum(_number(t, "completion_tokens", where) for t in tenants.values())
    p50 = {k: _number(summary.get(k) or {}, "p50", f"{where}: {k}") for k in ("ttft_s", "tpot_s")}
    mode = str(report.get("mode", ""))
    closed = _CLOSED_LOOP.fullmatch(mode)
    if closed:
        concurrency = int(closed.group(1))
    else:
        e2e = _number(summary.get("e2e_s") or {}, "p50", f"{where}: e2e_s")
        concurrency = max(1, round(_number(summary, "requests_per_s", where) * e2e))
    return MeasuredRun(
        workload=Workload(round(prompt / ok), max(1, round(completion / ok)), concurrency),
        ttft_s=p50["ttft_s"],
        tpot_s=p50["tpot_s"],
        output_tokens_per_s=_number(summary, "output_tokens_per_s", where),
    )


def loads(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[int, int]:
    """The fewest and most requests in flight among the reports' runs: beyond them, a
    calibrated figure extrapolates (`planner_band.calibrated_band`)."""
    flights = [measured_run(report, where).workload.concurrency for where, report in reports]
    if not flights:
        raise CalibrationError("no bench reports to calibrate on")
    return min(flights), max(flights)


# How a group shares a mixture of experts (`planner.layouts`), as `--calibrated-layout` names it:
# (data-parallel attention, whole experts spread over the group).
LAYOUTS = {"tp": (False, False), "tp+ep": (False, True), "dp+tp": (True, False),
           "dp+ep": (True, True)}  # fmt: skip


def calibrate_on(
    reports: Sequence[tuple[str, Mapping[str, Any]]], acc: Accelerator, *, group: int = 1,
    layout: str = "tp", admission_interval: int = 1, kv_cache: str = "bf16",
) -> Efficiency:  # fmt: skip
    """Fit the roofline's efficiency to bench reports measured on one replica of `group` `acc`s
    sharing the model as `layout` (`LAYOUTS`), on an engine that looks for new requests every
    `admission_interval` decode iterations and keeps its KV cache as `kv_cache`. The reports
    name the model they ran; it must be a reference model, the same in all of them. What
    calibration does not fit stays at `Efficiency()`'s values, not a published-figure entry's:
    on published load sweeps of one deployment, the entries' fitted per-layer and per-sequence
    costs kept calibration from following the deployment (`benchmarks/calibration_sweeps.py`)."""
    if not reports:
        raise CalibrationError("no bench reports to calibrate on")
    if layout not in LAYOUTS:
        raise CalibrationError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    names = {str(r.get("model", "")) for _, r in reports}
    if len(names) != 1:
        raise CalibrationError(f"bench reports ran different models {sorted(names)}; give one")
    name = names.pop()
    try:
        model = find_model(name)
    except ModelError as exc:
        raise CalibrationError(f"bench reports ran {name!r}: {exc}") from None
    formats = FORMATS[model.default_precision].compute
    compute = next((p for p in formats if acc.tflops(p)), None)
    if compute is None:
        raise CalibrationError(f"{acc.id} has no TFLOPS figure at {' or '.join(formats)}")
    if kv_cache not in KV_CACHE_BITS:
        raise CalibrationError(f"unknown KV cache format {kv_cache!r}")
    spec = with_layout(model.id, replace(model.spec(kv_bits=KV_CACHE_BITS[kv_cache]),
                                         compute_precision=compute))  # fmt: skip
    attention_dp, expert_parallel = LAYOUTS[layout]
    if (attention_dp or expert_parallel) and (spec.moe is None or group == 1):
        raise CalibrationError(f"layout {layout} needs a mixture of experts on more than one "
                               f"accelerator ({model.id} on {group})")  # fmt: skip
    where = acc.id if group == 1 else f"{group} x {acc.id}"
    runs = [measured_run(report, at) for at, report in reports]
    try:
        dev = replace(device(acc, group, compute), attention_dp=attention_dp,
                      expert_parallel=expert_parallel)  # fmt: skip
        weights = perf_model.resident_weight_bytes(spec, dev)
        if weights > dev.memory_bytes:
            raise ValueError(f"its weights ({weights / 1e9:,.0f} GB) do not fit {where}'s "
                             f"memory ({dev.memory_bytes / 1e9:,.0f} GB): give the "
                             "accelerators the runs' replica had (--calibrated-tp)")  # fmt: skip
        held = Efficiency(admission_interval=admission_interval)
        eff = perf_model.calibrate(spec, dev, runs, held)
    except ValueError as exc:  # a group that cannot be (PlanError), a run it cannot explain
        raise CalibrationError(f"{model.id} on {where}: {exc}") from None
    if group > 1:
        where += f", {dev.layout}"
    source = f"calibrated on {where} ({len(runs)} {model.id} runs)"
    if all(_CLOSED_LOOP.fullmatch(str(r.get("mode", ""))) for _, r in reports):
        # A closed loop's requests arrive as others end, in step with the engine's iterations;
        # the traffic being planned for arrives at random and queues behind others' prefills.
        eff = replace(eff, random_arrival_share=1.0)
        source += ", arrivals taken as random (closed-loop runs only)"
    return replace(eff, source=source)
