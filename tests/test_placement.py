"""Placement over a catalogue of fleets, each test asserting where replicas go or the exact
reason they cannot. The fleets are NodeInventory values built by hand (no hardware needed):
the figures are the catalog's (memory per device) and the models catalog's (via demand.py)."""

from dataclasses import replace

import pytest

from tokenmill.economics.demand import model_demand
from tokenmill.economics.models import find_model
from tokenmill.fleet.inventory import Cpu, Device, NodeInventory, Resource, Vendor
from tokenmill.fleet.placement import Demand, Held, Rejection, place

H100 = ("NVIDIA", "GPU", "NVIDIA H100 80GB HBM3", 80.0, "h100")
L40S = ("NVIDIA", "GPU", "NVIDIA L40S", 48.0, "l40s")
ASCEND = ("Huawei", "NPU", "Ascend910B2", 64.0, "ascend-910b")
MLU370 = ("Cambricon", "MLU", "MLU370-X8", 48.0, "mlu370-x8")


def devices(
    n: int, kind: tuple[Vendor, Resource, str, float, str], used: dict[int, float] | None = None
) -> tuple[Device, ...]:
    vendor, resource, model, gb, catalog_id = kind
    used = used or {}
    return tuple(
        Device(vendor, resource, i, model, gb, catalog_id, memory_used_gb=used.get(i))
        for i in range(n)
    )


def node(
    name: str,
    devs: tuple[Device, ...] = (),
    ram_gb: float = 1024.0,
    cached: frozenset[str] = frozenset(),
) -> NodeInventory:
    cpu = Cpu("Intel Xeon Platinum 8480+", 112, ram_gb)
    return NodeInventory(name, f"{name}.lan", cpu, devs, models_cached=cached)


def llama(size: str, tokens: int, precision: str | None = None) -> Demand:
    """A catalog model at `tokens` of KV in all (context x concurrency), 10% reserve."""
    return model_demand(find_model(f"llama-3.1-{size}"), context_tokens=tokens, precision=precision)


def reasons(rejections: tuple[Rejection, ...]) -> list[str]:
    return [str(r) for r in rejections]


# ------------------------------------------------------------------------------ 8x H100 80 GB


def test_70b_on_8x_h100_takes_the_smallest_tensor_parallel_group_that_fits() -> None:
    # 141.2 GB of bf16 weights + 42.9 GB of KV (8192 tokens x 16 requests): TP 2 needs
    # 92.1 + 8.0 GB a device (> 80), TP 4 needs 46.0 + 8.0.
    demand = llama("70b", 8192 * 16)
    assert round(demand.weights_gb, 1) == 141.2 and round(demand.kv_gb, 1) == 42.9
    placement = place(demand, [node("h100-a", devices(8, H100))])
    assert placement.ok
    (chosen,) = placement.chosen
    assert (chosen.node, chosen.target, chosen.devices) == ("h100-a", "GPU", (0, 1, 2, 3))
    assert chosen.tensor_parallel == 4 and round(chosen.gb_per_device, 1) == 54.0
    assert placement.rounds[0].rejections == ()


def test_8b_fits_one_h100_and_a_second_replica_spreads_to_the_next_device() -> None:
    demand = replace(llama("8b", 8192 * 8), replicas=2)
    placement = place(demand, [node("h100-a", devices(8, H100))])
    assert [(o.node, o.devices) for o in placement.chosen] == [("h100-a", (0,)), ("h100-a", (1,))]


def test_a_model_too_big_for_any_node_says_so_exactly() -> None:
    demand = Demand("giant", weights_gb=700.0, kv_gb=20.0, reserve_share=0.1)
    placement = place(demand, [node("h100-a", devices(8, H100))])
    assert not placement.ok and placement.chosen == ()
    assert placement.reason == (
        "no node can hold it: giant needs weights 700.0 GB + KV 20.0 GB on one node "
        "(tensor parallelism does not span nodes)"
    )
    assert reasons(placement.rounds[0].rejections) == [
        "h100-a: 8 x NVIDIA H100 80GB HBM3: too small: at TP 8 each device needs 98.0 GB "
        "(weights 700.0 GB + KV 20.0 GB, / 8 devices, + 10% reserve (8.0 GB)), "
        "more than the 80.0 GB a device has"
    ]


def test_max_devices_caps_the_tensor_parallel_degree() -> None:
    demand = replace(llama("70b", 8192 * 16), max_devices=2)
    placement = place(demand, [node("h100-a", devices(8, H100))])
    assert placement.chosen == ()
    assert reasons(placement.rounds[0].rejections) == [
        "h100-a: 8 x NVIDIA H100 80GB HBM3: too small: at TP 2 each device needs 100.1 GB "
        "(weights 141.2 GB + KV 42.9 GB, / 2 devices, + 10% reserve (8.0 GB)), "
        "more than the 80.0 GB a device has"
    ]


# --------------------------------------------------------------------------- 8x Ascend 910B


def test_an_npu_demand_lands_on_the_ascend_node_and_names_why_not_the_h100_node() -> None:
    demand = replace(llama("70b", 8192 * 16), resource="NPU")
    fleet = [node("h100-a", devices(8, H100)), node("ascend-a", devices(8, ASCEND))]
    placement = place(demand, fleet)
    (chosen,) = placement.chosen
    # TP 4: 46.0 GB of weights and KV + 6.4 GB reserve (10% of 64) on each of four NPUs.
    assert (chosen.node, chosen.target, chosen.devices) == ("ascend-a", "NPU", (0, 1, 2, 3))
    assert chosen.hardware == "Ascend910B2" and round(chosen.gb_per_device, 1) == 52.4
    assert reasons(placement.rounds[0].rejections) == [
        "h100-a: no NPU (it has 8 x GPU NVIDIA H100 80GB HBM3)"
    ]


def test_an_accelerator_kind_no_node_has_is_refused_with_a_reason_per_node() -> None:
    demand = replace(llama("8b", 8192), resource="HPU")
    fleet = [
        node("h100-a", devices(8, H100)),
        node("ascend-a", devices(8, ASCEND)),
        node("cpu-a"),
    ]
    placement = place(demand, fleet)
    assert not placement.ok
    assert reasons(placement.rounds[0].rejections) == [
        "h100-a: no HPU (it has 8 x GPU NVIDIA H100 80GB HBM3)",
        "ascend-a: no HPU (it has 8 x NPU Ascend910B2)",
        "cpu-a: no HPU (it has no accelerators)",
    ]


def test_a_catalog_type_not_allowed_rejects_each_device_by_name() -> None:
    demand = replace(llama("8b", 8192), accelerators=frozenset({"h200"}))
    placement = place(demand, [node("l40s-a", devices(2, L40S))])
    assert reasons(placement.rounds[0].rejections) == [
        "l40s-a GPU0: NVIDIA L40S (l40s) is not an allowed type (h200)",
        "l40s-a GPU1: NVIDIA L40S (l40s) is not an allowed type (h200)",
        "l40s-a: none of its 2 accelerator devices is usable",
    ]


# ---------------------------------------------------------------------- mixed MLU370 + CPU


def test_mixed_mlu_and_cpu_node_puts_an_8b_model_on_an_mlu() -> None:
    demand = replace(llama("8b", 8192 * 4), resource="MLU")
    placement = place(demand, [node("mixed", devices(2, MLU370), ram_gb=256)])
    (chosen,) = placement.chosen
    assert (chosen.target, chosen.devices, chosen.hardware) == ("MLU", (0,), "MLU370-X8")


def test_mixed_node_falls_back_to_the_cpu_when_no_mlu_group_can_hold_70b() -> None:
    demand = replace(llama("70b", 8192 * 16), resource="MLU", cpu_fallback=True)
    placement = place(demand, [node("mixed", devices(2, MLU370), ram_gb=256)])
    (chosen,) = placement.chosen
    assert (chosen.target, chosen.devices) == ("CPU", ())
    assert round(chosen.gb_per_device, 1) == 184.1  # no reserve on the CPU
    assert reasons(placement.rounds[0].rejections) == [
        "mixed: 2 x MLU370-X8: too small: at TP 2 each device needs 96.9 GB "
        "(weights 141.2 GB + KV 42.9 GB, / 2 devices, + 10% reserve (4.8 GB)), "
        "more than the 48.0 GB a device has"
    ]


def test_cpu_fallback_is_not_taken_unless_allowed() -> None:
    demand = replace(llama("70b", 8192 * 16), resource="MLU")
    placement = place(demand, [node("mixed", devices(2, MLU370), ram_gb=256)])
    assert placement.chosen == ()


def test_cpu_that_is_too_small_says_how_much_ram_is_free() -> None:
    demand = Demand("llm", weights_gb=10.0, kv_gb=2.0, overhead_gb=0.5, resource="CPU")
    held = [Held("small", "CPU", 9.0, model="other")]
    placement = place(demand, [node("small", devices(2, MLU370), ram_gb=16)], held)
    assert reasons(placement.rounds[0].rejections) == [
        "small CPU: 7.0 GB of RAM free of 16.0 GB, needs 12.5 GB "
        "(weights 10.0 GB + KV 2.0 GB + 0.5 GB overhead)"
    ]


# ---------------------------------------------------------------------------- 2x L40S 48 GB


def test_70b_bf16_cannot_fit_two_l40s() -> None:
    placement = place(llama("70b", 8192 * 4), [node("l40s-a", devices(2, L40S))])
    assert not placement.ok
    assert reasons(placement.rounds[0].rejections) == [
        "l40s-a: 2 x NVIDIA L40S: too small: at TP 2 each device needs 80.8 GB "
        "(weights 141.2 GB + KV 10.7 GB, / 2 devices, + 10% reserve (4.8 GB)), "
        "more than the 48.0 GB a device has"
    ]


def test_70b_fp8_fits_two_l40s_with_tensor_parallelism() -> None:
    placement = place(llama("70b", 8192 * 4, "fp8"), [node("l40s-a", devices(2, L40S))])
    (chosen,) = placement.chosen
    assert chosen.devices == (0, 1) and round(chosen.gb_per_device, 1) == 45.5


def test_a_fixed_tensor_parallel_degree_larger_than_the_node_is_refused() -> None:
    demand = replace(llama("8b", 8192), tensor_parallel=4)
    placement = place(demand, [node("l40s-a", devices(2, L40S))])
    assert reasons(placement.rounds[0].rejections) == [
        "l40s-a: 2 x NVIDIA L40S: TP 4 needs 4 devices"
    ]


def test_an_unhealthy_device_is_skipped_with_its_health() -> None:
    sick = replace(devices(2, L40S)[0], healthy=False, health="XID 79: fallen off the bus")
    placement = place(llama("8b", 8192), [node("l40s-a", (sick, devices(2, L40S)[1]))])
    (chosen,) = placement.chosen
    assert chosen.devices == (1,)
    assert reasons(placement.rounds[0].rejections) == [
        "l40s-a GPU0: unhealthy: XID 79: fallen off the bus"
    ]


# ------------------------------------------------------------------- a node already half full

HALF_FULL = devices(8, H100, used={0: 60.0, 1: 60.0, 2: 60.0, 3: 60.0})


def test_half_full_node_rejects_the_full_devices_by_name_and_uses_a_free_one() -> None:
    # 8B bf16 with 65,536 tokens of KV: 16.1 + 8.6 GB + 8.0 reserve = 32.6 GB on one device.
    demand = replace(llama("8b", 8192 * 8), strategy="binpack")
    placement = place(demand, [node("half", HALF_FULL)])
    (chosen,) = placement.chosen
    assert chosen.devices == (4,)
    assert reasons(placement.rounds[0].rejections) == [
        f"half GPU{i}: 20.0 GB free of 80.0 GB, needs 32.6 GB at TP 1" for i in range(4)
    ]


def test_binpack_fills_the_half_full_node_and_spread_picks_the_empty_one() -> None:
    fleet = [node("empty", devices(8, H100)), node("half", HALF_FULL)]
    demand = llama("8b", 8192 * 8)
    assert place(replace(demand, strategy="binpack"), fleet).chosen[0].node == "half"
    assert place(replace(demand, strategy="spread"), fleet).chosen[0].node == "empty"


def test_memory_we_placed_counts_even_before_the_device_reports_it() -> None:
    # GPUs 0-3 report 60 GB used and hold a 70 GB replica of ours: 10 GB free (the larger
    # figure, not both). GPUs 4-7 report nothing yet but hold 75 GB of ours: 5 GB free.
    held = [Held("half", "GPU", 70.0, devices=(0, 1, 2, 3))]
    held += [Held("half", "GPU", 75.0, devices=(4, 5, 6, 7))]
    placement = place(llama("8b", 8192 * 8), [node("half", HALF_FULL)], held)
    assert not placement.ok
    assert reasons(placement.rounds[0].rejections) == [
        "half: 8 x NVIDIA H100 80GB HBM3: not enough free memory: at TP 8 each device needs "
        "11.1 GB (weights 16.1 GB + KV 8.6 GB, / 8 devices, + 10% reserve (8.0 GB)); "
        "0 of them have that free",
        *(f"half GPU{i}: 10.0 GB free of 80.0 GB, needs 11.1 GB at TP 8" for i in range(4)),
        *(f"half GPU{i}: 5.0 GB free of 80.0 GB, needs 11.1 GB at TP 8" for i in range(4, 8)),
    ]


def test_the_last_replica_that_fits_nowhere_is_named() -> None:
    demand = replace(llama("70b", 8192 * 4, "fp8"), replicas=2)
    placement = place(demand, [node("l40s-a", devices(2, L40S))])
    assert len(placement.chosen) == 1 and not placement.ok
    assert placement.reason is not None
    assert placement.reason.startswith("no node can hold replica 2 of 2: llama-3.1-70b needs")


# ------------------------------------------------------------------ spread vs binpack, caching


def test_spread_puts_two_replicas_on_two_nodes_and_binpack_on_one() -> None:
    fleet = [node("l40s-a", devices(2, L40S)), node("l40s-b", devices(2, L40S))]
    demand = replace(llama("8b", 8192 * 2), replicas=2)
    spread = place(replace(demand, strategy="spread"), fleet)
    binpack = place(replace(demand, strategy="binpack"), fleet)
    assert [(o.node, o.devices) for o in spread.chosen] == [("l40s-a", (0,)), ("l40s-b", (0,))]
    # 23.0 GB each: the second replica still fits beside the first on GPU0.
    assert [(o.node, o.devices) for o in binpack.chosen] == [("l40s-a", (0,)), ("l40s-a", (0,))]


def test_spread_counts_replicas_already_running() -> None:
    fleet = [node("l40s-a", devices(2, L40S)), node("l40s-b", devices(2, L40S))]
    demand = llama("8b", 8192 * 2)
    held = [Held("l40s-a", "GPU", 23.0, devices=(0,), model=demand.model)]
    assert place(demand, fleet, held).chosen[0].node == "l40s-b"


def test_spread_avoids_a_node_with_a_replica_even_when_it_has_more_memory() -> None:
    # Left free after placing: 8x H100 92.8% (/ 2: one replica already there), 2x L40S 76.0%.
    fleet = [node("h100-a", devices(8, H100)), node("l40s-b", devices(2, L40S))]
    demand = llama("8b", 8192 * 2)
    held = [Held("h100-a", "GPU", 23.0, devices=(0,), model=demand.model)]
    chosen = place(demand, fleet, held).chosen[0]
    assert (chosen.node, chosen.score) == ("l40s-b", 76.0)


def test_one_device_comes_before_several_and_any_accelerator_before_the_cpu() -> None:
    # binpack would score the TP-2 group (93% full after) above one H100 (7.5%), and the
    # CPU-only node higher still: the tier decides first.
    l4 = ("NVIDIA", "GPU", "NVIDIA L4", 24.0, "l4")
    fleet = [
        node("cpu-a", ram_gb=48),
        node("l4-b", devices(2, l4)),
        node("h100-c", devices(8, H100)),
    ]
    demand = Demand("m", 40.0, 0.0, reserve_share=0.1, strategy="binpack", cpu_fallback=True)
    first = place(demand, fleet).rounds[0]
    assert first.chosen is not None
    assert (first.chosen.node, first.chosen.devices) == ("h100-c", (0,))
    assert [(o.node, o.devices) for o in first.also_fit] == [("l4-b", (0, 1)), ("cpu-a", ())]


def test_a_node_holding_the_model_file_is_preferred_and_scores_ten_more() -> None:
    path = "/models/llama-3.1-8b"
    fleet = [node("l40s-a", devices(2, L40S)), node("l40s-b", devices(2, L40S), cached={path})]
    demand = replace(llama("8b", 8192 * 2), model_file=path, replicas=2)
    first, second = place(demand, fleet).rounds
    assert first.chosen is not None and first.chosen.node == "l40s-b" and first.chosen.cached
    (other,) = first.also_fit
    assert other.node == "l40s-a" and first.chosen.score == pytest.approx(other.score + 10)
    # Spread still wins over the bonus for the second replica.
    assert second.chosen is not None and second.chosen.node == "l40s-a"


def test_no_nodes() -> None:
    assert place(llama("8b", 8192), []).reason == "no nodes in the fleet"


def test_demand_refuses_impossible_figures() -> None:
    with pytest.raises(ValueError, match="reserve_share"):
        Demand("m", 1.0, 1.0, reserve_share=1.0)
    with pytest.raises(ValueError, match="node names"):
        place(llama("8b", 8192), [node("a"), node("a")])
