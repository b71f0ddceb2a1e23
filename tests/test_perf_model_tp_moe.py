"""Tensor parallelism and mixtures of experts in the performance model (issue 17): the
collectives, per-layer and per-expert overheads, KV replication, the experts a batch touches,
and the data behind them (model layouts, engine efficiencies, validation bands)."""

import dataclasses
import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

from tokenmill.economics import efficiency_data, model_layouts, planner_band
from tokenmill.economics.collectives import all_reduce_per_token_s, ring_all_reduce_s
from tokenmill.economics.models import find_model
from tokenmill.economics.moe import (
    MoeShape,
    expert_matmul_efficiency,
    tokens_per_expert,
    touched_experts,
)
from tokenmill.economics.parallel import all_to_all_per_token_s
from tokenmill.economics.perf_model import (
    Device,
    Efficiency,
    MeasuredRun,
    Workload,
    calibrate,
    kv_replication,
    predict,
)
from tokenmill.economics.planner import device, interconnect_assumed
from tokenmill.fleet.catalog import catalog

CAT = catalog()
DEFAULT = Efficiency()
LLAMA_70B = model_layouts.with_layout("llama-3.1-70b", find_model("llama-3.1-70b").spec("fp8"))
DSV3 = model_layouts.with_layout("deepseek-v3", find_model("deepseek-v3").spec())


def _split() -> ModuleType:
    """tests/test_planner_figures.py, where the held-out split is frozen."""
    path = Path(__file__).parent / "test_planner_figures.py"
    spec = importlib.util.spec_from_file_location("frozen_split", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _no_link(dev: Device) -> Device:
    return dataclasses.replace(dev, link_bandwidth=0.0, link_latency_s=0.0)


# ------------------------------------------------------------------------------ collectives


def test_ring_all_reduce_cost() -> None:
    # 8 devices, 1 MB at 450 GB/s each way: 2 x 7/8 x 1e6 / 450e9 = 3.89 us, plus 8 us
    assert ring_all_reduce_s(1e6, 8, 450e9, 8e-6) == pytest.approx(3.889e-6 + 8e-6, rel=1e-3)
    assert ring_all_reduce_s(1e6, 1, 450e9, 8e-6) == 0.0


def test_a_tp8_decode_step_pays_two_all_reduces_per_layer() -> None:
    h100x8 = device(CAT["h100"], 8, "fp8")
    assert h100x8.link_bandwidth == pytest.approx(450e9)  # 900 GB/s both ways
    assert h100x8.link_latency_s == pytest.approx(8e-6)
    work = Workload(128, 64, 1)
    with_link = predict(LLAMA_70B, h100x8, DEFAULT, work).tpot_s
    without = predict(LLAMA_70B, _no_link(h100x8), DEFAULT, work).tpot_s
    # one token: 8192 x 2 bytes per all-reduce at 82% of 450 GB/s, 160 of them, plus latency
    per = 2 * 7 / 8 * 8192 * 2 / (450e9 * 0.82) + 8e-6
    assert with_link - without == pytest.approx(160 * per, rel=1e-6)


def test_a_group_over_two_nodes_all_reduces_over_the_network_too() -> None:
    """16 x H100 are two HGX nodes: a ring inside each over NVLink, then each device's 1/8
    share of the sum between the nodes over its 400 Gb/s port, at 20 us more per collective."""
    two = device(CAT["h100"], 16, "fp8")
    assert (two.nodes, two.count) == (2, 16)
    assert two.network_bandwidth == pytest.approx(50e9) and two.network_latency_s == 20e-6
    assert all_reduce_per_token_s(8192, 16, 450e9, 2, 50e9) == pytest.approx(
        2 * 7 / 8 * 8192 * 2 / 450e9 + 2 * 1 / 2 * 8192 * 2 / 8 / 50e9
    )
    one_node = dataclasses.replace(two, nodes=1, network_bandwidth=0.0, network_latency_s=0.0)
    work = Workload(128, 64, 1)
    slower = (
        predict(LLAMA_70B, two, DEFAULT, work).tpot_s
        - predict(LLAMA_70B, one_node, DEFAULT, work).tpot_s
    )
    network = 2 * 1 / 2 * 8192 * 2 / 8 / (50e9 * DEFAULT.interconnect)
    local = 2 * 7 / 8 * 8192 * 2 / (450e9 * DEFAULT.interconnect)
    whole = 2 * 15 / 16 * 8192 * 2 / (450e9 * DEFAULT.interconnect)
    assert slower == pytest.approx(160 * (20e-6 + network + local - whole), rel=1e-6)
    # the A3 die's node holds 16: one node, no network; nodes of 2 (--max-per-node 2) put a
    # TP4 group over two of them
    assert device(CAT["ascend-910c-die"], 16, "bf16").nodes == 1
    assert device(CAT["h100"], 4, "bf16", per_node=2).nodes == 2
    assert device(CAT["h100"], 4, "bf16").nodes == 1
    with pytest.raises(ValueError, match="nodes"):
        predict(LLAMA_70B, dataclasses.replace(two, nodes=3), DEFAULT, work)


def test_an_all_to_all_sends_what_leaves_the_node_over_the_network() -> None:
    inside = all_to_all_per_token_s(7168, 8, 16, 450e9)
    across = all_to_all_per_token_s(7168, 8, 16, 450e9, 2, 50e9)
    per_device = 8 * 7168 * 2 / 16
    assert inside == pytest.approx(2 * per_device * 15 / 16 / 450e9)
    assert across == pytest.approx(2 * (per_device * 7 / 16 / 450e9 + per_device * 8 / 16 / 50e9))


def test_one_device_pays_no_collectives() -> None:
    one = device(CAT["h100"], 1, "bf16")
    llama8 = model_layouts.with_layout("llama-3.1-8b", find_model("llama-3.1-8b").spec())
    work = Workload(512, 64, 4)
    assert predict(llama8, one, DEFAULT, work) == predict(llama8, _no_link(one), DEFAULT, work)


def test_interconnect_is_assumed_pcie_where_the_catalog_has_none() -> None:
    k100 = CAT["k100-ai"]
    assert k100.interconnect_gbs is None and interconnect_assumed(k100)
    assert device(k100, 2, "bf16").link_bandwidth == pytest.approx(31.5e9)
    assert not interconnect_assumed(CAT["h200"])


def test_layer_overhead_is_paid_per_layer_and_iteration() -> None:
    dev = device(CAT["h100"], 8, "fp8")
    work = Workload(128, 64, 2)
    base = predict(LLAMA_70B, dev, DEFAULT, work)
    slow = predict(LLAMA_70B, dev, dataclasses.replace(DEFAULT, layer_overhead_s=50e-6), work)
    assert slow.tpot_s - base.tpot_s == pytest.approx(80 * 50e-6)


# ------------------------------------------------------------------------------ KV copies


def test_kv_heads_are_replicated_over_a_wider_group() -> None:
    assert kv_replication(LLAMA_70B, device(CAT["h100"], 8, "fp8")) == 1  # 8 KV heads
    assert kv_replication(DSV3, device(CAT["h200"], 8, "fp8")) == 8  # one latent per device
    qwen235 = find_model("qwen3-235b-a22b").spec()
    assert kv_replication(qwen235, device(CAT["h100"], 8, "bf16")) == 2  # 4 KV heads
    work = Workload(1000, 100, 10)
    p = predict(DSV3, device(CAT["h200"], 8, "fp8"), DEFAULT, work)
    assert p.kv_bytes == pytest.approx(10 * 1056 * DSV3.kv_bytes_per_token * 8)  # 1050 in blocks


# ------------------------------------------------------------------------------ experts


def test_touched_experts() -> None:
    assert touched_experts(1, 256, 8) == pytest.approx(8)
    assert touched_experts(4, 256, 8) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 4))
    assert touched_experts(10_000, 256, 8) == pytest.approx(256)
    assert touched_experts(0, 256, 8) == 0
    shape = DSV3.moe
    assert shape is not None
    assert tokens_per_expert(1, shape) == pytest.approx(1)
    assert tokens_per_expert(4096, shape) == pytest.approx(4096 * 8 / 256, rel=1e-6)


def test_expert_matmuls_turn_compute_bound_with_tokens_per_expert() -> None:
    shape = DSV3.moe
    assert shape is not None
    args = (1979e12, 3.35e12, 8, 0.5, 0.7)
    effs = [expert_matmul_efficiency(t, shape, *args) for t in (1, 64, 1024, 65536)]
    assert effs == sorted(effs) and effs[0] < 0.01 and effs[-1] > 0.4


def test_a_small_moe_batch_reads_the_dense_part_and_the_touched_experts() -> None:
    shape = DSV3.moe
    assert shape is not None
    dev = _no_link(device(CAT["h200"], 8, "fp8"))
    one = predict(DSV3, dev, DEFAULT, Workload(1, 2)).tpot_s
    dense = DSV3.params - shape.routed_params
    read = (dense + 8 * shape.moe_layers * shape.expert_params) / (dev.bandwidth * 0.7)
    matmuls = 2 * DSV3.active_params / (dev.flops * 0.5)
    kv = 2 * DSV3.kv_bytes_per_token * 8 / (dev.bandwidth * 0.7)  # mean context 1 + 2 / 2
    attention = 2 * DSV3.attention_flops_per_pair / (dev.attention_peak * 0.5)  # bf16
    assert one == pytest.approx(read + matmuls + kv + attention, rel=1e-6)


def test_expert_overhead_is_paid_per_touched_expert() -> None:
    dev = device(CAT["h200"], 8, "fp8")
    work = Workload(200, 100, 4)
    base = predict(DSV3, dev, DEFAULT, work).tpot_s
    eff = dataclasses.replace(DEFAULT, expert_overhead_s=5e-6)
    # Decode iterations touch the experts of their 4 tokens; the 3 / 101 of an iteration that
    # prefills another request instead touch those of its 200 prompt tokens and 3 decode
    # tokens (the same iteration the fleet simulator runs, `perf_model.iteration_cost`).
    share = 3 / 101
    touched = ((1 - share) * touched_experts(4, 256, 8)
               + share * touched_experts(203, 256, 8)) * 58  # fmt: skip
    assert predict(DSV3, dev, eff, work).tpot_s - base == pytest.approx(touched * 5e-6)


def test_expert_efficiencies_apply_to_the_experts_only() -> None:
    shape = DSV3.moe
    assert shape is not None
    dev = _no_link(device(CAT["h200"], 8, "fp8"))
    work = Workload(1, 2)
    base = predict(DSV3, dev, DEFAULT, work).tpot_s
    slow = predict(DSV3, dev, dataclasses.replace(DEFAULT, expert_bandwidth=0.35), work).tpot_s
    routed = 8 * shape.moe_layers * shape.expert_params
    assert slow - base == pytest.approx(routed / dev.bandwidth * (1 / 0.35 - 1 / 0.7), rel=1e-6)


def test_a_moe_shape_must_fit_its_model() -> None:
    bad = dataclasses.replace(DSV3, moe=MoeShape(256, 8, 58, 50e9))
    with pytest.raises(ValueError, match="exceed"):
        predict(bad, device(CAT["h200"], 8, "fp8"), DEFAULT, Workload(10, 10))


def test_every_moe_layout_matches_its_model_card() -> None:
    for ident, layout in model_layouts.layouts().items():
        spec = find_model(ident).spec()
        assert layout.hidden_size > 0 and layout.sources, ident
        if layout.moe is None:
            assert spec.active_params == spec.params, ident
            continue
        layout.moe.check(spec.params, spec.active_params)
        dense = spec.params - layout.moe.routed_params
        assert 0 < dense < 0.1 * spec.params, ident  # routed experts hold most of a MoE


# ------------------------------------------------------------------------------ calibration


def test_calibrate_at_tp2_holds_the_collectives_and_fits_the_rest() -> None:
    llama8 = model_layouts.with_layout("llama-3.1-8b", find_model("llama-3.1-8b").spec())
    dev = device(CAT["h100"], 2, "bf16")
    true = Efficiency(compute=0.35, bandwidth=0.8, step_overhead_s=0.001, request_overhead_s=0.02)
    runs = []
    for n in (256, 2048, 4096):
        for c in (1, 16):
            p = predict(llama8, dev, true, Workload(n, 256, c))
            runs.append(MeasuredRun(Workload(n, 256, c), p.ttft_s, p.tpot_s,
                                    p.output_tokens_per_s))  # fmt: skip
    fitted = calibrate(llama8, dev, runs)
    assert fitted.compute == pytest.approx(0.35, rel=0.02)
    held = Workload(1024, 128, 8)
    want, got = predict(llama8, dev, true, held), predict(llama8, dev, fitted, held)
    assert got.tpot_s == pytest.approx(want.tpot_s, rel=0.02)


# ------------------------------------------------------------------------------ data


@pytest.mark.parametrize(
    ("engine", "vendor", "family"),
    [
        ("vLLM v0.11.0", "NVIDIA", "vllm"),
        ("vLLM-Ascend v0.9.1", "Huawei", "vllm-ascend"),
        ("vllm", "Huawei", "vllm-ascend"),
        ("TensorRT-LLM 0.16.0 (trtllm-bench)", "NVIDIA", "tensorrt-llm"),
        ("SGLang v0.5.3", "NVIDIA", "sglang"),
        ("vLLM (rocm/vllm-dev:20250112 image)", "AMD", "vllm"),
        ("ATOM main commit 2f713064 (image rocm/atom:rocm_7.2_preview)", "AMD", "atom"),
        (None, "NVIDIA", None),
        ("something else", "AMD", None),
    ],
)
def test_engine_families(engine: str | None, vendor: str, family: str | None) -> None:
    assert efficiency_data.engine_family(engine, vendor) == family


def _entries(*extra: tuple[str, str, str, str, str]) -> tuple[efficiency_data.Entry, ...]:
    """A data file: a default entry (bandwidth 0.6), then `extra` entries, each (id, engine,
    vendor, label, the rest of its table)."""
    tables = [("default", "*", "*", "default", "values = {bandwidth = 0.6}"), *extra]
    return efficiency_data.load("schema_version = 1\n" + "".join(
        f'[[efficiency]]\nid = "{i}"\nengine = "{e}"\nvendor = "{v}"\nlabel = "{label}"\n'
        f'source = "test"\n{rest}\n' for i, e, v, label, rest in tables))  # fmt: skip


def test_efficiencies_pick_the_most_specific_entry() -> None:
    entries = _entries(("vllm-amd", "vllm", "AMD", "vLLM on AMD",
                        "values = {bandwidth = 0.4, layer_overhead_s = 5e-5}"))  # fmt: skip
    amd = efficiency_data.efficiency_for("vLLM 0.6", "AMD", entries)
    assert amd.bandwidth == 0.4 and amd.layer_overhead_s == 5e-5 and amd.source == "vLLM on AMD"
    assert efficiency_data.efficiency_for("vllm", "NVIDIA", entries).bandwidth == 0.6
    assert efficiency_data.efficiency_for(None, "AMD", entries).source == "default"


def test_a_fitted_value_at_the_edge_of_its_range_is_named() -> None:
    """A fit that leaves a rate at either end of its range, or an overhead at its largest, was
    asked for more than the term can give: `at_bounds` names it (a cited entry, never)."""
    low, high = efficiency_data.RATE_BOUNDS
    longest = efficiency_data.OVERHEAD_BOUNDS[1]
    fitted = 'fitted_on = ["f1"]\n'
    entries = _entries(
        ("a", "vllm", "AMD", "a", fitted + f"values = {{bandwidth = {high}, compute = 0.5, "
                                           f"request_overhead_s = {longest}}}"),
        ("b", "vllm", "NVIDIA", "b", fitted + f"values = {{compute = {low}, "
                                              "request_overhead_s = 1e-7}"),
        ("c", "sglang", "AMD", "c", f"values = {{bandwidth = {high}}}"),  # cited, not fitted
    )  # fmt: skip
    assert [e.at_bounds() for e in entries] == [
        (),
        ("bandwidth", "request_overhead_s"),
        ("compute",),
        (),
    ]


def test_an_entry_says_when_a_model_is_of_an_architecture_it_was_not_fitted_on() -> None:
    fitted = 'fitted_on = ["f1"]\n'
    _, moe, both, unrecorded = _entries(
        ("m", "sglang", "NVIDIA", "m", fitted + 'architectures = ["moe"]\nvalues = {}'),
        ("b", "vllm", "NVIDIA", "b", fitted + 'architectures = ["moe", "dense"]\nvalues = {}'),
        ("u", "vllm", "AMD", "u", fitted + "values = {}"),
    )  # fmt: skip
    assert moe.unfitted("dense") == "fitted on MoE figures only, not dense"
    assert moe.unfitted("moe") is None
    assert both.architectures == ("dense", "moe") and both.unfitted("dense") is None
    assert unrecorded.unfitted("dense") is None is unrecorded.unfitted("moe")


def test_an_engine_release_picks_the_entry_it_has_reached() -> None:
    """SGLang 0.4.x and 0.5.x differ by more than one entry fits: an entry may hold from a
    release on; a name without a version gets the newest (what a deployment installs)."""
    entries = _entries(
        ("sglang-nvidia", "sglang", "NVIDIA", "old", "values = {expert_bandwidth = 0.1}"),
        ("sglang-0.5-nvidia", "sglang", "NVIDIA", "new",
         'since = "0.5"\nvalues = {expert_bandwidth = 0.5}'),
        ("sglang-0.5-amd", "sglang", "AMD", "new on AMD",
         'since = "0.5"\nvalues = {expert_bandwidth = 0.4}'),
    )  # fmt: skip
    assert efficiency_data.engine_version("SGLang 0.5.6.post1") == (0, 5, 6)
    assert efficiency_data.engine_version("vLLM-Ascend v0.11.0rc1") == (0, 11, 0)
    assert efficiency_data.engine_version("ROCm 6.2, vLLM 0.6.3") == (0, 6, 3)
    assert efficiency_data.engine_version("vLLM main") is None

    def label(engine: str, vendor: str = "NVIDIA") -> str:
        return efficiency_data.efficiency_for(engine, vendor, entries).source

    assert label("SGLang v0.4.1") == "old" and label("SGLang 0.5.6.post1") == "new"
    assert label("SGLang 0.10.0") == "new" and label("sglang") == "new"
    assert label("SGLang 0.5.7", "AMD") == "new on AMD"
    assert label("SGLang 0.4.6", "AMD") == "default"  # no AMD entry that old


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version = 2", "schema_version"),
        ("schema_version = 1", "no \\[\\[efficiency\\]\\]"),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "vllm"\nvendor = "AMD"\n'
            'label = "x"\nsource = "y"\nvalues = {}',
            "default entry",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'label = "x"\nsource = "y"\nvalues = {speed = 2}',
            "not an Efficiency field",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'label = "x"\nsource = "y"\nvalues = {compute = 0}',
            "efficiencies must be",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'label = "x"\nsource = "y"\nvalues = {}\n[[efficiency]]\nid = "b"\n'
            'engine = "sglang"\nvendor = "*"\nsince = "new"\nlabel = "x"\nsource = "y"\n'
            "values = {}",
            "since must be a version",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'since = "0.5"\nlabel = "x"\nsource = "y"\nvalues = {}',
            "since needs an engine",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'label = "x"\nsource = "y"\nfitted_on = ["f"]\narchitectures = ["ssm"]\n'
            "values = {}",
            "architectures must be a list of 'dense' or 'moe'",
        ),
        (
            'schema_version = 1\n[[efficiency]]\nid = "a"\nengine = "*"\nvendor = "*"\n'
            'label = "x"\nsource = "y"\narchitectures = ["moe"]\nvalues = {}',
            "architectures are those of fitted_on's figures",
        ),
    ],
)
def test_bad_efficiency_data_is_refused(text: str, message: str) -> None:
    with pytest.raises(efficiency_data.EfficiencyDataError, match=message):
        efficiency_data.load(text)


def test_packaged_efficiencies_are_fitted_on_the_fit_half_only() -> None:
    split = _split()
    ids = {f["id"] for path in split.pf.DEV for f in split.pf.load(path)[1]}
    held_out = split.DEV_HELD_OUT
    kinds = {f["id"]: f["architecture"] for path in split.pf.DEV
             for f in split.pf.load(path)[1]}  # fmt: skip
    for entry in efficiency_data.packaged():
        assert entry.source.strip() and entry.label.strip()
        assert entry.fitted_on, entry.id
        assert set(entry.fitted_on) <= ids - held_out, entry.id
        assert entry.architectures == tuple(sorted({kinds[i] for i in entry.fitted_on})), entry.id
        assert "fitted on FIT ids" in entry.source
        entry.efficiency()  # valid values


def test_validation_bands_are_the_held_out_figures() -> None:
    source, figures = planner_band.packaged()
    assert "held-out" in source
    split = _split()
    assert {f.id for f in figures} <= split.DEV_HELD_OUT
    assert len(figures) >= 19
    fitted = {i for entry in efficiency_data.packaged() for i in entry.fitted_on}
    assert not {f.id for f in figures} & fitted


def test_a_band_narrows_to_the_kind_and_says_when_it_extrapolates() -> None:
    figs = [planner_band.Validated(f"d{i}", "dense", 8, "AMD", 64, r)
            for i, r in enumerate((0.8, 1.0, 1.25))]  # fmt: skip
    figs.append(planner_band.Validated("m", "moe", 8, "NVIDIA", 1000, 2.0))
    amd = planner_band.band("dense", 8, "AMD", 64, figures=figs)
    assert amd.low == pytest.approx(0.8) and amd.high == pytest.approx(1.25)
    assert amd.figures == 3
    assert not amd.extrapolating and "dense, TP8, AMD: 3 held-out figures" in amd.text()
    assert amd.plus_minus == pytest.approx(0.25)
    # no MoE figure on AMD: the band comes from all MoE-less kinds, flagged
    moe_amd = planner_band.band("moe", 8, "AMD", 64, figures=figs)
    assert moe_amd.extrapolating and "no held-out figure for MoE, TP8, AMD" in moe_amd.text()
    # far beyond any validated batch, or resting on a guess
    assert planner_band.band("dense", 8, "AMD", 4096, figures=figs).extrapolating
    guess = planner_band.band("dense", 8, "AMD", 64, figures=figs, assumptions=("PCIe",))
    assert guess.extrapolating == ("PCIe",)


def test_a_band_gives_its_middle_beside_its_range() -> None:
    """One outlier sets the range; setting aside a tenth of the figures at each end shows the
    common case, with the number of figures inside it."""
    speeds = (0.90, 0.95, 1.00, 1.00, 1.03, 1.10, 1.00, 0.98, 1.02, 0.05, 0.97, 1.01)
    figs = [planner_band.Validated(f"d{i}", "dense", 1, "NVIDIA", 8, 1 / s, accelerator="h100")
            for i, s in enumerate(speeds)]  # fmt: skip
    b = planner_band.band("dense", 1, "NVIDIA", 8, figures=figs, accelerator="h100")
    assert (b.low, b.high) == (pytest.approx(0.05), pytest.approx(1.10))
    assert b.middle == (pytest.approx(0.90), pytest.approx(1.03), 10)  # 0.05 and 1.10 aside
    assert "12 held-out figures; 10 of them within -10%/+3%" in b.text()
    assert not b.extrapolating
    assert planner_band.band("dense", 1, "NVIDIA", 8, figures=figs[:9]).middle is None
    # the kind's figures ran other parts: the band is borrowed, and says so
    other = planner_band.band("dense", 1, "NVIDIA", 8, figures=figs, accelerator="l40s")
    assert other.extrapolating == ("no held-out dense figure ran l40s",)


def test_a_band_says_when_no_held_out_figure_ran_the_layout() -> None:
    figs = [planner_band.Validated(f"m{i}", "moe", 8, "AMD", 64, r) for i, r in enumerate((1, 2))]
    ep = planner_band.band("moe", 8, "AMD", 64, layout="TP + EP experts", figures=figs)
    assert ep.extrapolating == ("no held-out MoE figure ran TP + EP experts",)
    figs.append(planner_band.Validated("e", "moe", 4, "NVIDIA", 32, 1.1, "TP + EP experts"))
    assert not planner_band.band("moe", 8, "AMD", 64, layout="TP + EP experts",
                                 figures=figs).extrapolating  # fmt: skip
    assert Device("x", 1, 1, 1, count=8, stages=2).layout_kind == "PP x TP"


def test_efficiency_data_values_are_physical() -> None:
    for entry in efficiency_data.packaged():
        eff = entry.efficiency()
        for name in ("compute", "bandwidth", "interconnect"):
            assert 0 < getattr(eff, name) <= 1, (entry.id, name)
        assert all(math.isfinite(v) and v >= 0 for v in entry.values.values())


# ------------------------------------------------------------------------------ sliding window


def test_a_sliding_window_layer_reads_only_its_window() -> None:
    """gpt-oss: half the layers attend to the last 128 tokens, so a query at 20k tokens reads
    about half the KV a full-attention model of its shape would, and so does its cache."""
    oss = model_layouts.with_layout("gpt-oss-20b", find_model("gpt-oss-20b").spec())
    assert (oss.sliding_window, oss.window_layers, oss.layers) == (128, 12, 24)
    assert oss.attended(100) == 100
    assert oss.attended(20_000) == pytest.approx(0.5 * 20_000 + 0.5 * 128)
    # prefill pairs: every earlier token on full layers, at most 128 on windowed ones
    assert oss.pairs(100, 0) == 100 * 101 / 2
    full = 1000 * 1001 / 2
    windowed = 128 * 129 / 2 + (1000 - 128) * 128
    assert oss.pairs(1000, 0) == pytest.approx(0.5 * full + 0.5 * windowed)
    assert oss.pairs(500, 500) == pytest.approx(oss.pairs(1000, 0) - oss.pairs(500, 0))
    no_window = dataclasses.replace(oss, sliding_window=None, window_layers=0)
    dev = device(CAT["h100"], 1, "bf16")
    work = Workload(20_000, 2_000, 8)
    assert predict(oss, dev, DEFAULT, work).kv_bytes == pytest.approx(
        predict(no_window, dev, DEFAULT, work).kv_bytes * 0.5, rel=0.01
    )
    assert predict(oss, dev, DEFAULT, work).tpot_s < predict(no_window, dev, DEFAULT, work).tpot_s


def test_a_window_needs_both_fields() -> None:
    text = (
        'schema_version = 1\n[sources.c]\ntitle = "t"\nurl = "https://x"\ndate = "2025"\n'
        '[[layout]]\nid = "m"\nhidden_size = {value = 8, src = "c"}\n'
        'sliding_window = {value = 128, src = "c"}\n'
    )
    with pytest.raises(model_layouts.LayoutError, match="window_layers"):
        model_layouts.load(text)


# ------------------------------------------------------------------------------ attention


def test_attention_computes_at_the_16_bit_peak_whatever_the_weights_format() -> None:
    """FP8 weights make the matmuls FP8; the attention kernels (FlashAttention, FlashInfer,
    FlashMLA) still compute in bf16, at half the FP8 peak on an H100."""
    fp8 = device(CAT["h100"], 8, "fp8")
    assert fp8.flops == pytest.approx(CAT["h100"].tflops("fp8") * 1e12 * 8)
    assert fp8.attention_peak == pytest.approx(CAT["h100"].tflops("bf16") * 1e12 * 8)
    assert device(CAT["h100"], 8, "bf16").attention_peak == device(CAT["h100"], 8, "bf16").flops
    # int8 matmuls on GB300 run at a fraction of its bf16 peak; attention stays at bf16
    assert device(CAT["gb300"], 1, "int8").attention_peak == CAT["gb300"].tflops("bf16") * 1e12
    cpu = next(a for a in CAT.values() if set(a.tflops_dense) == {"fp32"})
    assert device(cpu, 1, "fp32").attention_peak == device(cpu, 1, "fp32").flops
    at_fp8 = dataclasses.replace(fp8, attention_flops=fp8.flops)
    work = Workload(16_000, 2, 1)
    slower = (
        predict(LLAMA_70B, fp8, DEFAULT, work).ttft_s
        - predict(LLAMA_70B, at_fp8, DEFAULT, work).ttft_s
    )
    attention = LLAMA_70B.attention_flops_per_pair * LLAMA_70B.pairs(16_000, 0)
    expected = attention * (1 / fp8.attention_peak - 1 / fp8.flops) / DEFAULT.compute
    assert slower == pytest.approx(expected, rel=1e-6)
