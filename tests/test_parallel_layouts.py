"""Data-parallel attention and expert parallelism (economics/parallel.py) in the performance
model: routing imbalance, the KV cache and dense weights they move, their collectives, and
the fleet simulator agreeing with the planner on them."""

import dataclasses
import math

import pytest

from tokenmill.economics.collectives import all_reduce_per_token_s
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import find_model
from tokenmill.economics.parallel import (
    all_to_all_per_token_s,
    attention_imbalance,
    expert_imbalance,
)
from tokenmill.economics.perf_model import (
    Efficiency,
    Workload,
    iteration_seconds,
    kv_replication,
    max_concurrency,
    predict,
    resident_weight_bytes,
)
from tokenmill.economics.planner import device
from tokenmill.fleet.catalog import catalog

CAT = catalog()
DSV3 = with_layout("deepseek-v3", find_model("deepseek-v3").spec("fp8"))
TP8 = device(CAT["h200"], 8, "fp8")
DP_EP8 = dataclasses.replace(TP8, attention_dp=True, expert_parallel=True)
EFF = Efficiency(compute=0.6, bandwidth=0.6, expert_overhead_s=4e-6)


def test_routing_imbalance_shrinks_with_the_batch_and_is_bounded() -> None:
    assert expert_imbalance(1000, 8, 1) == 1.0
    one = expert_imbalance(1, 8, 8)  # 8 assignments over 8 devices: the busiest gets ~3
    assert 2.5 < one < 3.2
    assert expert_imbalance(4, 8, 8) < one
    assert 1 < expert_imbalance(1000, 8, 8) < 1.07  # 8,000 assignments: 6% over
    assert expert_imbalance(0.01, 8, 8) == 8  # never more than everything on one device
    assert attention_imbalance(1, 8) == 8 and attention_imbalance(16, 8) == 1
    assert attention_imbalance(9, 8) == pytest.approx(16 / 9)


def test_dp_attention_stores_a_latent_cache_once_and_copies_the_dense_weights() -> None:
    assert kv_replication(DSV3, TP8) == 8 and kv_replication(DSV3, DP_EP8) == 1
    assert DP_EP8.layout == "DP8 attention + EP8 experts" and TP8.layout == "TP8"
    assert dataclasses.replace(TP8, expert_parallel=True).layout == "TP8 + EP8 experts"
    moe = DSV3.moe
    assert moe is not None
    dense = (DSV3.params - moe.routed_params) * DSV3.weight_bits / 8  # ~16.5 GB
    assert resident_weight_bytes(DSV3, DP_EP8) == pytest.approx(DSV3.weight_bytes + 7 * dense)
    work = Workload(1000, 1000, 1)
    # the cache no longer sits on every device: several times the requests fit
    assert max_concurrency(DSV3, DP_EP8, work) > 5 * max_concurrency(DSV3, TP8, work)


def test_all_to_alls_carry_what_an_all_reduce_would_for_top_k_of_n() -> None:
    link = 450e9
    a2a = all_to_all_per_token_s(7168, 8, 8, link)
    # each device sends 8 copies of 7/8 of its 1/8 of the tokens, and gets them back
    assert a2a == pytest.approx(2 * 8 * 7168 * 2 * 7 / 64 / link)
    assert a2a == pytest.approx(all_reduce_per_token_s(7168, 8, link))  # k = n: equal
    assert all_to_all_per_token_s(7168, 8, 1, link) == 0


def test_whole_experts_pay_their_grouped_gemm_cost_once_not_on_every_device() -> None:
    # at 256 sequences every expert is touched: sliced over TP8 each device pays the
    # per-expert cost for all 256 x 58 experts, spread whole only for its 32 x 58
    contexts = [2000.0] * 256
    tp = iteration_seconds(DSV3, TP8, EFF, [], contexts)
    ep = iteration_seconds(DSV3, dataclasses.replace(TP8, expert_parallel=True), EFF, [], contexts)
    saved = 256 * 58 * 4e-6 * (1 - 1 / 8)
    assert tp - ep == pytest.approx(saved, rel=0.15)  # the rest: imbalance at 256 x 8
    # at one sequence whole experts are worse: the busiest device reads ~3 of the 8
    one = [2000.0]
    assert iteration_seconds(DSV3, DP_EP8, EFF, [], one) > iteration_seconds(
        DSV3, dataclasses.replace(TP8, attention_dp=True), EFF, [], one
    )


def test_a_dense_model_has_no_expert_layout() -> None:
    llama = find_model("llama-3.1-70b").spec("bf16")
    with pytest.raises(ValueError, match="experts' shape"):
        predict(llama, dataclasses.replace(TP8, attention_dp=True), EFF, Workload(100, 10))


@pytest.mark.parametrize("layout", ["tp", "dp-attention", "ep", "dp-attention+ep"])
def test_every_layout_predicts_finite_positive_speeds(layout: str) -> None:
    dev = dataclasses.replace(
        TP8, attention_dp=layout.startswith("dp"), expert_parallel=layout.endswith("ep")
    )
    for c in (1, 8, 64, 512):
        p = predict(DSV3, dev, EFF, Workload(1000, 500, c))
        assert math.isfinite(p.ttft_s) and p.ttft_s > 0 and p.tpot_s > 0
        assert p.output_tokens_per_s > 0
