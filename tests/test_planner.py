"""The capacity planner (`tokenmill plan`) and its reference models, on hand-checkable cases.

The roofline itself is tested with perf_model; here the numbers that matter are the planner's
own: memory fit, the SLO and rack-power filters, and that money is the cost model's.
"""

import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tokenmill.cli.main import app
from tokenmill.economics import efficiency_data
from tokenmill.economics.cost import HOURS_PER_MONTH, cost_per_million_tokens, payback_months
from tokenmill.economics.efficiency_data import efficiency_for
from tokenmill.economics.facilities import loads_facilities
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import (
    ModelError,
    custom_model,
    find_model,
    load,
    reference_models,
)
from tokenmill.economics.perf_model import Efficiency, Workload, iteration_seconds, predict
from tokenmill.economics.planner import Demand, PlanError, PlanOptions, Slo, device, plan
from tokenmill.economics.planner_band import calibrated_band
from tokenmill.economics.planner_calibration import CalibrationError, calibrate_on, measured_run
from tokenmill.fleet.catalog import Accelerator, PriceRange, catalog, find

D = Decimal
CAT = catalog()
LLAMA_8B = find_model("llama-3.1-8b")
LLAMA_70B = find_model("llama-3.1-70b")
EASY = Slo(ttft_s=10.0, tpot_s=1.0)


def only(*ids: str) -> dict[str, Accelerator]:
    return {i: CAT[i] for i in ids}


def rentable(acc_id: str, per_hour: str) -> Accelerator:
    """A catalog part with a rental price it lacks, for a case that needs one."""
    return replace(CAT[acc_id], rental_usd_per_hour=PriceRange(D(per_hour), D(per_hour)))


# --- reference models ---------------------------------------------------------------------


def test_reference_models_kv_cache_per_token_from_their_configs() -> None:
    # Llama 3.1 8B: 2 (K,V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131072 = 128 KiB
    assert LLAMA_8B.spec().kv_bytes_per_token == 131072
    # 70B: 2 x 80 x 8 x 128 x 2 = 327680 = 320 KiB; bf16 weights 70.6e9 x 2 = 141.2 GB
    assert LLAMA_70B.spec().kv_bytes_per_token == 327680
    assert LLAMA_70B.spec().weight_bytes == pytest.approx(141.2e9)
    # DeepSeek-V3 caches one latent of 512 + 64 elements per layer: 61 x 576 x 2 = 70272 bytes
    v3 = find_model("DeepSeek-R1")
    assert v3.id == "deepseek-v3" and v3.spec().kv_bytes_per_token == 70272
    assert v3.spec().weight_bytes == pytest.approx(671e9)  # fp8: one byte a weight
    mixtral = find_model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert (mixtral.spec().params, mixtral.spec().active_params) == (46.7e9, 12.9e9)


def test_smollm2_is_the_gguf_tokenmill_serves() -> None:
    smol = find_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    spec = smol.spec()
    # the Q4_1 file's tensors: 96,576,768 bytes (5.744 bits x 134,515,008 weights)
    assert spec.weight_bytes == pytest.approx(96.58e6, rel=1e-3)
    assert spec.kv_bytes_per_token == 2 * 30 * 3 * 64 * 2  # 23040
    assert smol.spec("q8_0").weight_bits == 8.5  # another format: its nominal bits


def test_every_reference_number_names_its_source() -> None:
    for model in reference_models().values():
        assert {"params", "layers", "attention_heads", "kv_heads", "head_dim"} <= set(model.sources)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("layers = {value = 32}", "needs src"),
        ("layers = {value = 0, src = 's'}", "positive"),
        ("layers = {value = 32.5, src = 's'}", "whole number"),
        ("layers = {value = 32, src = 's'}\nwidth = 4", "unknown field"),
    ],
)
def test_model_loader_names_the_bad_field(snippet: str, message: str) -> None:
    text = f"""schema_version = 1
[sources.s]
title = "t"
date = "2024"
[[model]]
id = "m"
name = "M"
default_precision = "bf16"
params = {{value = 1e9, src = "s"}}
attention_heads = {{value = 8, src = "s"}}
kv_heads = {{value = 8, src = "s"}}
head_dim = {{value = 64, src = "s"}}
max_context = {{value = 4096, src = "s"}}
{snippet}
"""
    with pytest.raises(ModelError, match=message):
        load(text)


def test_find_model_forgives_case_org_and_suffix_but_does_not_guess() -> None:
    assert find_model("meta-llama/Llama-3.1-8B-Instruct") is LLAMA_8B
    assert find_model("LLAMA-3.1-70B") is LLAMA_70B
    with pytest.raises(ModelError, match="known: deepseek-v3"):
        find_model("llama-3.1-13b")


def test_a_quantized_checkpoints_name_finds_the_model_it_quantizes() -> None:
    """A precision suffix names the same shape stored smaller; the precision is asked apart."""
    assert find_model("nvidia/Llama-3.1-8B-Instruct-FP8") is LLAMA_8B
    assert find_model("Llama-3.1-70B-Instruct-AWQ") is LLAMA_70B
    assert find_model("nvidia/Llama-3.3-70B-Instruct-FP8").id == "llama-3.3-70b"
    with pytest.raises(ModelError):
        find_model("FP8")  # a precision alone names nothing


def test_custom_model_checks_its_numbers() -> None:
    with pytest.raises(ModelError, match="kv heads"):
        custom_model(params=7e9, layers=32, attention_heads=8, kv_heads=16, head_dim=128)


# --- filter and fit -----------------------------------------------------------------------


def test_70b_bf16_does_not_fit_one_80gb_h100() -> None:
    demand = Demand(1000, 200, requests_per_s=1)
    # 141.2 GB of weights + 0.39 GB KV (1200 x 327680 B) > 80 GB x 90% = 72 GB: in nodes of
    # one H100 a replica spans two nodes, tensor or pipeline parallel over the network
    alone = plan(LLAMA_70B, demand, EASY, PlanOptions(max_per_node=1), accelerators=only("h100"))
    (spanning,) = alone.options
    assert spanning.tensor_parallel == 2 and spanning.layout in {"TP2", "PP2 x TP1"}
    # 810 GB of Llama-3.1-405B does not fit the widest group tried, 4 such nodes
    huge = plan(find_model("llama-3.1-405b"), demand, EASY, PlanOptions(max_per_node=1),
                accelerators=only("h100"))  # fmt: skip
    (ex,) = huge.excluded
    assert ex.kind == "memory"
    assert "4 x 80 GB = 320 GB (PP4 x TP1) has 288.0 GB usable" in ex.reason
    # allowed a node of 8, the smallest group that fits is 2 (144 GB usable)
    (opt,) = plan(LLAMA_70B, demand, EASY, accelerators=only("h100")).options
    assert opt.tensor_parallel == 2 and opt.accelerators == 2 * opt.replicas
    assert opt.layout == "TP2"


def test_missing_catalog_figures_are_named() -> None:
    parts = {"ascend-910b": replace(CAT["ascend-910b"], rental_usd_per_hour=None),
             "ascend-910c": replace(CAT["ascend-910c"], tdp_w=None)}  # fmt: skip
    result = plan(LLAMA_8B, Demand(500, 100, requests_per_s=1), EASY, accelerators=parts)
    reasons = {e.accelerator.id: e.reason for e in result.excluded}
    # bf16 falls back to the catalog's fp16 figure: the price is what is missing.
    assert reasons["ascend-910b"] == "no catalog figure for rental price per hour"
    assert "TDP" in reasons["ascend-910c"]
    assert {e.kind for e in result.excluded} == {"missing figure"}


def test_a_tight_ttft_slo_excludes_the_slow_part() -> None:
    # prefill of 4000 tokens of an 8B model: 2 x 8.03e9 x 4000 = 6.4e16 FLOP.
    # At half of peak: B200 (2250 TFLOPS) 57 ms; L40S (362 TFLOPS) 355 ms. SLO: 150 ms.
    parts = {"b200": CAT["b200"], "l40s": rentable("l40s", "0.90")}
    opts = PlanOptions(max_per_node=1, efficiency=Efficiency(compute=0.5, bandwidth=0.7))
    result = plan(LLAMA_8B, Demand(4000, 100, requests_per_s=1), Slo(0.150, 1.0), opts,
                  accelerators=parts)  # fmt: skip
    assert [o.accelerator.id for o in result.options] == ["b200"]
    (ex,) = result.excluded
    assert ex.kind == "slo" and ex.accelerator.id == "l40s"
    assert "misses the SLO at concurrency 1 on 1 x L40S" in ex.reason
    assert "TTFT" in ex.reason and "> SLO 150 ms" in ex.reason


def test_an_air_cooled_rack_limit_excludes_a_hot_node() -> None:
    book = loads_facilities("""
[cooling.air]
description = "air, a low rack budget"
pue = { value = 1.5, source = "test", date = "2026" }
max_kw_per_rack = { value = 1.0, source = "test", date = "2026" }
[cooling.immersion]
description = "immersion"
pue = { value = 1.03, source = "test", date = "2026" }
[facility.site]
description = "test site"
currency = "USD"
cooling = "air"
electricity = { price_per_kwh = "0.10", source = "test", date = "2026" }
""")
    demand = Demand(500, 100, requests_per_s=0.1)
    result = plan(LLAMA_8B, demand, EASY, PlanOptions(facility="site"), facilities=book,
                  accelerators=only("gb200", "h100"))  # fmt: skip
    (ex,) = result.excluded  # GB200's 1200 W node > 1 kW; H100's 700 W fits
    assert ex.kind == "rack power"
    assert ex.reason == (
        "exceeds rack power: one node of 1 x GB200 (per Blackwell GPU) draws 1.2 kW at TDP "
        "> air cooling's 1 kW per rack"
    )
    (h100,) = result.options
    assert dict(h100.racks) == {"air": h100.nodes, "immersion": "unknown"}  # 1 node a rack
    assert h100.all_in_kw == pytest.approx(h100.it_kw * 1.5)


# --- scoring ------------------------------------------------------------------------------


def test_cost_per_million_is_the_cost_models() -> None:
    demand = Demand(1000, 200, requests_per_s=5)
    (o,) = plan(LLAMA_8B, demand, Slo(2.0, 0.1), accelerators=only("h100")).options
    assert o.usd_per_accelerator_hour == D("2.50")  # rental mid of 2.00-3.00, power included
    assert o.usd_per_hour == D("2.50") * o.accelerators
    assert o.usd_per_million == cost_per_million_tokens(o.usd_per_hour, 5 * 1200)
    p = o.prediction
    assert o.usd_per_million_at_capacity == cost_per_million_tokens(
        D("2.50") * o.tensor_parallel, p.requests_per_s * 1200
    )
    assert o.replicas * p.requests_per_s >= 5 > (o.replicas - 1) * p.requests_per_s
    assert p.ttft_s <= 2.0 and p.tpot_s <= 0.1
    assert o.it_kw == pytest.approx(0.7 * o.accelerators)
    assert o.efficiency == "default"


def test_owned_payback_and_its_absence_below_cost() -> None:
    demand = Demand(1000, 200, requests_per_s=2)

    def owned(price: str) -> Any:
        opts = PlanOptions(acquire="owned", price_per_million=D(price))
        (o,) = plan(LLAMA_8B, demand, Slo(2.0, 0.1), opts, accelerators=only("h100")).options
        return o

    o = owned("1.00")
    # running cost per accelerator-hour: 0.7 kW x PUE 1.56 x $0.08 = $0.08736
    revenue = D("1.00") * D(2 * 1200) * 3600 * HOURS_PER_MONTH / 1_000_000
    running = D("0.08736") * o.accelerators * HOURS_PER_MONTH
    assert o.payback_months == payback_months(D(27500) * o.accelerators, revenue - running)
    assert o.monthly_margin == revenue - o.usd_per_hour * HOURS_PER_MONTH
    assert {"$/1M", "payback"} <= o.estimated  # the purchase price is a low-confidence figure
    assert o.low_confidence == ("purchase_price_usd",)
    assert owned("0.000001").payback_months is None  # below even the power bill: never


def test_tokens_per_day_is_a_rate_of_input_plus_output() -> None:
    demand = Demand(1000, 200, tokens_per_day=1.2e9)
    assert demand.rate == pytest.approx(1.2e9 / 86400 / 1200)  # 11.57 req/s


def test_low_confidence_tdp_marks_power_not_the_rent() -> None:
    (o,) = plan(LLAMA_8B, Demand(500, 100, requests_per_s=1), EASY,
                accelerators=only("gb200")).options  # fmt: skip
    assert o.low_confidence == ("tdp_w",)
    assert {"kW", "racks"} <= o.estimated and "$/1M" not in o.estimated


def test_a_calibration_applies_to_its_accelerator_only() -> None:
    eff = Efficiency(compute=0.3, bandwidth=0.4, source="calibrated on h100 (2 runs)")
    opts = PlanOptions(calibrated={"h100": eff})
    result = plan(LLAMA_8B, Demand(500, 100, requests_per_s=1), EASY, opts,
                  accelerators=only("h100", "h200"))  # fmt: skip
    used = {o.accelerator.id: o.efficiency for o in result.options}
    assert used == {"h100": "calibrated on h100 (2 runs)", "h200": "default"}


@pytest.mark.parametrize(
    ("demand", "opts", "message"),
    [
        (Demand(100, 10), PlanOptions(), "one of them"),
        (Demand(100, 10, requests_per_s=1, tokens_per_day=1e6), PlanOptions(), "one of them"),
        (Demand(0, 10, requests_per_s=1), PlanOptions(), "tokens per request must be >= 1"),
        (Demand(100, 10, requests_per_s=-2), PlanOptions(), "> 0"),
        (Demand(130_000, 2000, requests_per_s=1), PlanOptions(), "context of 131072"),
        (Demand(100, 10, requests_per_s=1), PlanOptions(facility="mars"), "unknown facility"),
        (Demand(100, 10, requests_per_s=1),
         PlanOptions(facility="cn-west-hub", acquire="owned"), "prices power in CNY"),
    ],
)  # fmt: skip
def test_bad_plan_inputs_are_refused(demand: Demand, opts: PlanOptions, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan(LLAMA_8B, demand, EASY, opts)


# --- bench reports as calibration input ---------------------------------------------------


def bench_report(mode: str = "closed loop, 4 in flight") -> dict[str, Any]:
    return {
        "model": "llama-3.1-8b",
        "mode": mode,
        "summary": {
            "ok": 10,
            "requests_per_s": 2.0,
            "output_tokens_per_s": 250.0,
            "ttft_s": {"p50": 0.04, "p90": 0.06, "p99": 0.08},
            "tpot_s": {"p50": 0.012, "p90": 0.015, "p99": 0.02},
            "e2e_s": {"p50": 1.6, "p90": 2.0, "p99": 2.4},
            "tenants": {"a": {"prompt_tokens": 3000, "completion_tokens": 1000, "ok": 6},
                        "b": {"prompt_tokens": 2000, "completion_tokens": 280, "ok": 4}},
        },
    }  # fmt: skip


def test_a_bench_report_becomes_a_measured_run() -> None:
    run = measured_run(bench_report(), "r.json")
    # 5000 prompt and 1280 completion tokens over 10 ok requests
    assert (run.workload.input_tokens, run.workload.output_tokens) == (500, 128)
    assert run.workload.concurrency == 4  # closed loop, as run
    assert (run.ttft_s, run.tpot_s, run.output_tokens_per_s) == (0.04, 0.012, 250.0)
    # open loop: Little's law, 2 req/s x 1.6 s p50 latency = 3.2 in flight
    assert measured_run(bench_report("open loop"), "r.json").workload.concurrency == 3
    with pytest.raises(CalibrationError, match=r"r\.json: no request succeeded"):
        measured_run({"summary": {**bench_report()["summary"], "ok": 0}}, "r.json")


def test_closed_loop_runs_do_not_set_how_planned_traffic_arrives() -> None:
    h100 = find("h100")
    closed = [(f"c{n}.json", bench_report(f"closed loop, {n} in flight")) for n in (1, 8)]
    eff = calibrate_on(closed, h100)
    assert eff.random_arrival_share == 1.0
    assert eff.source.endswith("arrivals taken as random (closed-loop runs only)")
    mixed = calibrate_on([*closed, ("open.json", bench_report("open loop"))], h100)
    assert mixed.source == "calibrated on h100 (3 llama-3.1-8b runs)"  # the fitted share stands


def _moe_reports(true: Efficiency, runs: list[tuple[int, int]]) -> list[tuple[str, dict]]:
    """Bench reports of deepseek-v3 on 8 x H200 (TP8) as the model at `true` predicts them:
    (prompt tokens, concurrency) each, 512 output tokens, 10 requests."""
    spec = with_layout("deepseek-v3", replace(find_model("deepseek-v3").spec(),
                                              compute_precision="fp8"))  # fmt: skip
    dev = device(find("h200"), 8, "fp8")
    reports = []
    for n, c in runs:
        p = predict(spec, dev, true, Workload(n, 512, c))
        report = bench_report(f"closed loop, {c} in flight")
        report["model"] = "deepseek-v3"
        summary = report["summary"]
        summary["output_tokens_per_s"] = p.output_tokens_per_s
        summary["ttft_s"]["p50"], summary["tpot_s"]["p50"] = p.ttft_s, p.tpot_s
        summary["tenants"] = {"a": {"prompt_tokens": 10 * n, "completion_tokens": 5120, "ok": 10}}
        reports.append((f"n{n}-c{c}.json", report))
    return reports


def test_a_moe_deployment_is_calibrated_on_the_group_it_ran_on() -> None:
    """A DeepSeek user benches their 8 x H200 replica: the fit is of that group (its
    collectives and experts as they ran), and it predicts loads it was not run at. As one
    H200, the runs cannot have been run (671B of weights)."""
    true = Efficiency(compute=0.4, bandwidth=0.6, step_overhead_s=0.002, request_overhead_s=0.05)
    reports = _moe_reports(true, [(1024, 1), (4096, 8), (8192, 32), (1024, 64)])
    h200 = find("h200")
    eff = calibrate_on(reports, h200, group=8)
    assert eff.source.startswith("calibrated on 8 x h200, TP8 (4 deepseek-v3 runs)")
    spec = with_layout("deepseek-v3", replace(find_model("deepseek-v3").spec(),
                                              compute_precision="fp8"))  # fmt: skip
    dev = device(h200, 8, "fp8")
    for work in (Workload(2048, 256, 16), Workload(6000, 1024, 48)):
        want, got = predict(spec, dev, true, work), predict(spec, dev, eff, work)
        for field in ("ttft_s", "tpot_s", "output_tokens_per_s"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=0.03), field
    with pytest.raises(CalibrationError, match=r"deepseek-v3 on h200: .*weights"):
        calibrate_on(reports, h200)


def test_gpt_oss_is_multiplied_as_engines_multiply_its_mxfp4_experts() -> None:
    """gpt-oss ships MXFP4 experts, which no engine multiplies in FP4 on NVIDIA: Hopper and
    MI300X dequantise them to bf16 (they were excluded for want of an FP4 peak before), on
    Blackwell TensorRT-LLM runs FP8 activations (W4A8) and vLLM bf16; MI355X's FP4 stays."""
    model = find_model("gpt-oss-120b")
    demand, slo = Demand(1000, 500, requests_per_s=5), Slo(ttft_s=10, tpot_s=1)
    parts = only("h100", "mi300x", "b200", "mi355x")

    def precisions(engine: str | None) -> dict[str, str]:
        result = plan(model, demand, slo, PlanOptions(engine=engine), accelerators=parts)
        assert not result.excluded
        return {o.accelerator.id: o.compute_precision for o in result.options}

    assert precisions("tensorrt-llm") == {"h100": "bf16", "mi300x": "bf16", "b200": "fp8",
                                          "mi355x": "fp4"}  # fmt: skip
    assert precisions("vllm")["b200"] == precisions(None)["b200"] == "bf16"
    assert model.spec().weight_bits == pytest.approx(4.47)  # the checkpoint as published


def _package_one_fitted_entry(
    monkeypatch: pytest.MonkeyPatch, engine: str, label: str, values: str,
    architectures: list[str] | None = None,
) -> None:  # fmt: skip
    """The packaged efficiencies: a default entry and one fitted entry for `engine` on NVIDIA."""
    kinds = f"architectures = {json.dumps(architectures)}\n" if architectures else ""
    text = (
        'schema_version = 1\n[[efficiency]]\nid = "default"\nengine = "*"\nvendor = "*"\n'
        'label = "default"\nsource = "t"\nvalues = {bandwidth = 0.7}\n'
        f'[[efficiency]]\nid = "e"\nengine = "{engine}"\nvendor = "NVIDIA"\nlabel = "{label}"\n'
        f'source = "t"\nfitted_on = ["f"]\n{kinds}values = {{{values}}}\n'
    )
    monkeypatch.setattr(efficiency_data, "packaged", lambda: efficiency_data.load(text))


def test_an_option_on_an_entry_fitted_to_its_bounds_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An efficiency entry the fit left at the edge of a range (here vLLM on NVIDIA's
    per-request overhead at 250 ms) stands in for what the model lacks: the option's band says
    so, unless the plan runs on an efficiency of its own."""
    _package_one_fitted_entry(monkeypatch, "vllm", "vLLM here", "request_overhead_s = 0.25")
    demand, slo = Demand(1024, 256, requests_per_s=2), Slo(ttft_s=60, tpot_s=1)
    (vllm,) = plan(
        LLAMA_8B, demand, slo, PlanOptions(engine="vllm"), accelerators=only("h100")
    ).options
    assert "vLLM here: request_overhead_s at the fit's bound" in vllm.band.extrapolating
    (other,) = plan(LLAMA_8B, demand, slo, PlanOptions(), accelerators=only("h100")).options
    own = PlanOptions(engine="vllm", efficiency=Efficiency())
    (given,) = plan(LLAMA_8B, demand, slo, own, accelerators=only("h100")).options
    assert not any("fit's bound" in r for r in other.band.extrapolating + given.band.extrapolating)


def test_an_option_on_an_entry_fitted_on_moe_figures_alone_says_so_for_a_dense_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rates set by MoE runs need not hold for a dense model's matmuls: a dense plan on such
    an entry is flagged extrapolating, a MoE plan on it is not."""
    _package_one_fitted_entry(monkeypatch, "sglang", "SGLang here", "compute = 0.1", ["moe"])
    demand, slo = Demand(1024, 256, requests_per_s=2), Slo(ttft_s=60, tpot_s=1)
    opts = PlanOptions(engine="sglang")
    (dense,) = plan(LLAMA_8B, demand, slo, opts, accelerators=only("h200")).options
    assert ("SGLang here: fitted on MoE figures only, not dense"
            in dense.band.extrapolating)  # fmt: skip
    moe_model = find_model("qwen3-30b-a3b")
    (moe,) = plan(moe_model, demand, slo, opts, accelerators=only("h200")).options
    assert not any("figures only" in r for r in moe.band.extrapolating)


def test_an_engine_that_looks_for_requests_every_30_iterations_is_planned_slower_to_start() -> None:
    """`--admission-interval 30` (SGLang's --scheduler-recv-interval): the same option, at the
    same load, starts answering later; its tokens/s barely move."""
    h200 = only("h200")
    demand, slo = Demand(1024, 256, requests_per_s=2), Slo(ttft_s=60, tpot_s=1)
    plain = plan(find_model("llama-3.1-70b"), demand, slo, PlanOptions(), accelerators=h200)
    spaced = plan(find_model("llama-3.1-70b"), demand, slo,
                  PlanOptions(admission_interval=30), accelerators=h200)  # fmt: skip
    (a,), (b,) = plain.options, spaced.options
    assert (a.tensor_parallel, a.concurrency) == (b.tensor_parallel, b.concurrency)
    assert a.concurrency > 1
    # the others' decode iteration a new request waits through, (30 - 1) / 2 of them
    spec = replace(find_model("llama-3.1-70b").spec(), compute_precision=a.compute_precision)
    dev = device(CAT["h200"], a.tensor_parallel, a.compute_precision)
    step = iteration_seconds(spec, dev, efficiency_for(None, "NVIDIA"), [],
                             [1024 + 128] * (a.concurrency - 1))  # fmt: skip
    assert b.prediction.ttft_s - a.prediction.ttft_s == pytest.approx(14.5 * step, rel=0.01)
    assert b.output_tokens_per_s == pytest.approx(a.output_tokens_per_s, rel=0.05)


def test_an_fp8_kv_cache_holds_twice_the_requests_and_reads_half_the_bytes() -> None:
    """`--kv-cache fp8` (vLLM/SGLang --kv-cache-dtype fp8, TensorRT-LLM on a ModelOpt
    checkpoint): KV bytes per token halve, so a memory-bound option runs more requests in
    flight, and each decode step reads less."""
    h100 = only("h100")
    demand, slo = Demand(2000, 2000, requests_per_s=50), Slo(ttft_s=30, tpot_s=1)
    model = find_model("llama-3.1-8b")
    bf16 = plan(model, demand, slo, PlanOptions(precision="fp8"), accelerators=h100)
    fp8 = plan(model, demand, slo, PlanOptions(precision="fp8", kv_cache="fp8"), accelerators=h100)
    assert fp8.spec.kv_bytes_per_token == bf16.spec.kv_bytes_per_token / 2
    (a,), (b,) = bf16.options, fp8.options
    assert a.tensor_parallel == b.tensor_parallel == 1
    assert b.concurrency > 1.5 * a.concurrency  # the KV blocks bound both
    assert b.usd_per_million < a.usd_per_million
    with pytest.raises(PlanError, match="unknown KV cache format 'int4'"):
        plan(model, demand, slo, PlanOptions(kv_cache="int4"), accelerators=h100)


def test_a_calibrated_option_carries_the_calibrations_band() -> None:
    """Published load sweeps predicted after calibrating on two of their points: between the
    calibrated loads the band is narrower than beyond them, and beyond is extrapolating."""
    between, beyond = calibrated_band(16, (8, 64)), calibrated_band(128, (8, 64))
    assert between.figures >= 13 and beyond.figures >= 13
    assert not between.extrapolating
    assert beyond.extrapolating == ("128 requests in flight, calibrated at 8-64",)
    assert between.plus_minus < beyond.plus_minus
    assert "sweep points" in between.text()


@pytest.mark.parametrize(
    ("layout", "model", "message"),
    [
        ("tp+ep", "llama-3.1-8b", "needs a mixture of experts"),
        ("pp", "deepseek-v3", "layout 'pp' is not one of tp, tp+ep, dp+tp, dp+ep"),
    ],
)
def test_a_layout_the_runs_cannot_have_run_is_refused(
    layout: str, model: str, message: str
) -> None:
    report = bench_report()
    report["model"] = model
    with pytest.raises(CalibrationError, match=re.escape(message)):
        calibrate_on([("r.json", report)], find("h200"), group=8, layout=layout)


# --- the command --------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["plan", *args], env={"COLUMNS": "220"})


def test_cli_prints_ranked_options_and_exclusions() -> None:
    result = invoke("--model", "llama-3.1-70b", "--rate", "2", "--price", "0.60")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "options, cheapest per 1M tokens first" in out and "$/1M tok" in out
    assert "h100" in out and "2 x " in out  # TP 2 on 80 GB parts
    assert "excluded" in out and "cpu-2s-epyc-9654: no catalog figure for dense TFLOPS" in out


def test_cli_json_parses_and_ranks_by_cost() -> None:
    result = invoke("--model", "llama-3.1-8b", "--tokens-per-day", "1e9", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    costs = [D(o["usd_per_million_tokens"]) for o in data["options"]]
    assert costs == sorted(costs) and costs
    assert data["demand"]["requests_per_s"] == pytest.approx(1e9 / 86400 / 1200)
    assert {e["kind"] for e in data["excluded"]} >= {"missing figure"}


def test_cli_says_when_the_kv_cache_is_fp8() -> None:
    base = ["--model", "llama-3.1-8b", "--rate", "2", "--precision", "fp8"]
    text = invoke(*base, "--kv-cache", "fp8")
    assert text.exit_code == 0, text.output
    assert "KV 64 KiB/token (fp8 KV cache)" in text.output
    data = json.loads(invoke(*base, "--kv-cache", "fp8", "--json").output)
    assert data["model"]["kv_cache"] == "fp8" and data["model"]["kv_bytes_per_token"] == 65536
    assert json.loads(invoke(*base, "--json").output)["model"]["kv_cache"] == "bf16"


def test_cli_quotes_replace_and_fill_catalog_prices() -> None:
    base = ["--model", "llama-3.1-8b", "--rate", "2", "--json"]
    plain = json.loads(invoke(*base).output)
    quoted = json.loads(invoke(*base, "--quote", "l40s=0.50", "--quote", "H100=1.00").output)
    by_id = {o["accelerator"]: o for o in quoted["options"]}
    before = {o["accelerator"]: o for o in plain["options"]}
    # the quotes replace the catalog's ranges (L40S 0.79-1.29, H100 2.00-3.00 an hour)
    assert D(by_id["h100"]["usd_per_hour"]) < D(before["h100"]["usd_per_hour"])
    assert D(by_id["l40s"]["usd_per_hour"]) < D(before["l40s"]["usd_per_hour"])
    bad = invoke(*base, "--quote", "abacus=1")
    assert bad.exit_code == 2 and "no accelerator in the catalog matches" in bad.output


def test_cli_custom_model_spec() -> None:
    result = invoke("--params", "8.03", "--layers", "32", "--heads", "32", "--kv-heads", "8",
                    "--head-dim", "128", "--rate", "1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"]["weights_gb"] == pytest.approx(16.06)


def test_cli_chart_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "plan.png"
    result = invoke("--model", "llama-3.1-8b", "--rate", "3", "--chart", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_calibration_is_named_in_the_output(tmp_path: Path) -> None:
    reports = []
    for n, (ttft, tpot) in enumerate([(0.03, 0.010), (0.05, 0.013)], 1):
        report = bench_report(f"closed loop, {4 * n} in flight")
        report["summary"]["ttft_s"]["p50"], report["summary"]["tpot_s"]["p50"] = ttft, tpot
        path = tmp_path / f"run{n}.json"
        path.write_text(json.dumps(report))
        reports += ["--calibrate", str(path)]
    result = invoke("--model", "llama-3.1-8b", "--rate", "1", "--json", *reports,
                    "--calibrated-on", "H100 SXM")  # fmt: skip
    assert result.exit_code == 0, result.output
    used = {o["accelerator"]: o["efficiency"] for o in json.loads(result.output)["options"]}
    assert used["h100"].startswith("calibrated on h100 (2 llama-3.1-8b runs)")
    assert used["h200"] == "default"


def test_cli_calibrates_on_the_group_and_layout_the_reports_ran_on(tmp_path: Path) -> None:
    true = Efficiency(compute=0.4, bandwidth=0.6)
    args = []
    for name, report in _moe_reports(true, [(1024, 1), (4096, 8), (8192, 32)]):
        (tmp_path / name).write_text(json.dumps(report))
        args += ["--calibrate", str(tmp_path / name)]
    result = invoke("--model", "deepseek-v3", "--rate", "2", "--json", *args,
                    "--calibrated-on", "h200", "--calibrated-tp", "8")  # fmt: skip
    assert result.exit_code == 0, result.output
    options = {o["accelerator"]: o for o in json.loads(result.output)["options"]}
    assert options["h200"]["efficiency"].startswith("calibrated on 8 x h200, TP8 (3 deepseek-v3")
    # its band is the calibration's own check, not the published MoE figures'
    band = options["h200"]["uncertainty"]
    inside = 1 <= options["h200"]["concurrency_per_replica"] <= 32
    assert band["scope"] == f"calibrated, {'between' if inside else 'beyond'} its loads"
    assert band["extrapolating"] is not inside
    assert options["b200"]["uncertainty"]["scope"].startswith("MoE")
    bad = invoke("--model", "deepseek-v3", "--rate", "2", *args, "--calibrated-on", "h200")
    assert bad.exit_code == 2 and "--calibrated-tp" in " ".join(bad.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-9", "--rate", "1"], "no reference model matches 'gpt-9'"),
        (["--model", "llama-3.1-8b"], "one of them"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--tokens-per-day", "1e6"], "one of them"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--input-tokens", "-5"], "'--input-tokens'"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--price", "cheap"], "not a decimal"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--acquire", "leased"], "rented or owned"),
        (["--rate", "1"], "give --model NAME"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--chart", "plan.svg"], "name it *.png"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--calibrated-on", "h100"], "--calibrate"),
        (["--model", "llama-3.1-8b", "--rate", "1", "--kv-cache", "int4"], "choose from bf16"),
    ],
)  # fmt: skip
def test_cli_bad_input_exits_2_with_a_reason(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())  # rich may wrap the error box
