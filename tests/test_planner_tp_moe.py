"""The planner with issue 17's second slice: MoE layouts, efficiencies by engine, the band."""

import json
from dataclasses import replace
from decimal import Decimal

from typer.testing import CliRunner

from tokenmill.cli.main import app
from tokenmill.economics.models import custom_model, find_model
from tokenmill.economics.perf_model import Efficiency
from tokenmill.economics.planner import Demand, PlanOptions, Slo, plan
from tokenmill.economics.planner_view import view
from tokenmill.fleet.catalog import PriceRange, catalog

CAT = catalog()
DSR1 = find_model("deepseek-r1")
SLO = Slo(ttft_s=2.0, tpot_s=0.1)


def test_a_moe_plan_carries_its_layout_and_a_band() -> None:
    result = plan(DSR1, Demand(2000, 500, requests_per_s=2), SLO,
                  accelerators={k: CAT[k] for k in ("h200", "gaudi3")})  # fmt: skip
    assert result.spec.moe is not None and result.spec.hidden == 7168
    by_id = {o.accelerator.id: o for o in result.options}
    h200 = by_id["h200"]
    assert h200.tensor_parallel == 8 and h200.band is not None
    assert h200.band.scope == "MoE, TP8, NVIDIA" and not h200.band.extrapolating
    # Intel's only MoE figures ran on Arc Pro B60 (round 8): Gaudi 3's band is borrowed from
    # them (at its TP degree while two of them are held out at it, else any), and the option
    # says it is extrapolating
    intel = by_id["gaudi3"].band
    assert intel is not None and intel.scope in ("MoE, TP8, Intel", "MoE, Intel")
    assert "no held-out MoE figure ran gaudi3" in intel.extrapolating
    row = view(result)["options"][0]
    assert {"text", "plus_minus", "held_out_figures", "extrapolating"} <= set(row["uncertainty"])


def test_the_engine_picks_its_efficiencies_and_an_explicit_one_wins() -> None:
    demand = Demand(1000, 200, requests_per_s=1)
    parts = {"mi300x": CAT["mi300x"]}
    default = plan(find_model("llama-3.1-70b"), demand, SLO, accelerators=parts)
    vllm = plan(find_model("llama-3.1-70b"), demand, SLO, PlanOptions(engine="vLLM 0.6"),
                accelerators=parts)  # fmt: skip
    assert default.options[0].efficiency == "default"
    assert vllm.options[0].efficiency.startswith("vLLM on AMD (fitted on")
    explicit = PlanOptions(engine="vllm", efficiency=Efficiency())
    given = plan(find_model("llama-3.1-70b"), demand, SLO, explicit, accelerators=parts)
    assert given.options[0].efficiency == "default"
    assert given.options[0].prediction != vllm.options[0].prediction


def test_a_guessed_interconnect_and_an_unknown_expert_shape_are_flagged() -> None:
    moe = custom_model(params=100e9, active_params=10e9, layers=40, attention_heads=64,
                       kv_heads=8, head_dim=128, precision="bf16")  # fmt: skip
    # the K100 has no price, TDP or link figure in the catalog: a quote and a TDP to rank it
    k100 = replace(CAT["k100-ai"], rental_usd_per_hour=PriceRange(Decimal(1), Decimal(1)),
                   tdp_w=300.0)  # fmt: skip
    result = plan(moe, Demand(500, 100, requests_per_s=0.2), Slo(20.0, 2.0),
                  accelerators={"k100-ai": k100})  # fmt: skip
    (option,) = result.options
    assert option.tensor_parallel > 1 and option.band is not None
    reasons = option.band.extrapolating
    assert any("interconnect taken as PCIe" in r for r in reasons)
    assert any("custom MoE" in r for r in reasons)


def test_the_plan_command_shows_the_band() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["plan", "--model", "deepseek-r1", "--rate", "2",
                                 "--input-tokens", "2000", "--output-tokens", "500",
                                 "--engine", "vllm", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    options = json.loads(result.output)["options"]
    assert options and all(o["uncertainty"]["held_out_figures"] >= 2 for o in options)
    table = runner.invoke(app, ["plan", "--model", "deepseek-r1", "--rate", "2"])
    assert table.exit_code == 0 and "band" in table.output and "extrapolating" in table.output
    assert "mixture of experts" in table.output and "--calibrate" in table.output
    dense = runner.invoke(app, ["plan", "--model", "llama-3.1-8b", "--rate", "2"])
    assert dense.exit_code == 0 and "mixture of experts" not in dense.output


def test_an_engine_release_picks_its_entry() -> None:
    """SGLang 0.4 and 0.5 have entries of their own; no version: the newest release."""
    parts = {"h200": CAT["h200"]}
    demand = Demand(2000, 500, requests_per_s=2)

    def label(engine: str) -> str:
        result = plan(DSR1, demand, SLO, PlanOptions(engine=engine), accelerators=parts)
        return result.options[0].efficiency

    assert label("sglang 0.4.6").startswith("SGLang on NVIDIA (fitted on")
    assert label("sglang").startswith("SGLang 0.5 or later on NVIDIA (fitted on")
    assert label("SGLang 0.5.6.post1") == label("sglang")


def test_a_model_wider_than_a_node_is_planned_over_several() -> None:
    """DeepSeek-V3 at bf16 (1.34 TB) fits no 8 x H100 node (576 GB usable): the planner tries
    tensor parallel over two nodes and pipelines of whole-node stages, and says which."""
    from tokenmill.economics.planner import Demand, PlanOptions, Slo, plan

    result = plan(find_model("deepseek-v3"), Demand(1000, 200, requests_per_s=2),
                  Slo(ttft_s=5, tpot_s=0.2), PlanOptions(precision="bf16"),
                  accelerators={"h100": CAT["h100"]})  # fmt: skip
    (opt,) = result.options
    assert opt.layout.startswith("PP4 x TP8") and opt.tensor_parallel == 32
    assert opt.nodes == 4 * opt.replicas
    assert opt.band is not None and any("PP x TP" in why for why in opt.band.extrapolating)
