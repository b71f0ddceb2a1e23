"""The hardware catalog: data completeness, provenance, invariants, matching, strict loading."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from tokenmill.fleet.catalog import (
    CONFIDENCES,
    Accelerator,
    CatalogError,
    PriceRange,
    catalog,
    find,
    load,
)

REQUIRED = {
    "h100": "NVIDIA",
    "h200": "NVIDIA",
    "h20": "NVIDIA",
    "b200": "NVIDIA",
    "b300": "NVIDIA",
    "gb200": "NVIDIA",
    "l40s": "NVIDIA",
    "a100": "NVIDIA",
    "mi300x": "AMD",
    "mi325x": "AMD",
    "mi355x": "AMD",
    "ascend-910b": "Huawei",
    "ascend-910c": "Huawei",
    "atlas-300i-duo": "Huawei",
    "mlu370-x8": "Cambricon",
    "mlu590": "Cambricon",
    "k100-ai": "Hygon",
    "gaudi3": "Intel",
}

NUMERIC_FIELDS = (
    "memory_gb",
    "memory_bandwidth_gbs",
    "tdp_w",
    "interconnect_gbs",
    "collective_latency_us",
    "accelerators_per_node",
)
MONEY_FIELDS = ("purchase_price_usd", "rental_usd_per_hour")


def _numbers(acc: Accelerator) -> list[str]:
    names = [f for f in (*NUMERIC_FIELDS, *MONEY_FIELDS) if getattr(acc, f) is not None]
    return names + [f"tflops_dense.{p}" for p in acc.tflops_dense]


def test_every_required_accelerator_is_present() -> None:
    accs = catalog()
    for ident, vendor in REQUIRED.items():
        assert ident in accs, ident
        assert accs[ident].vendor == vendor
        assert accs[ident].kind in {"gpu", "npu"}
    assert any(a.kind == "cpu" for a in accs.values())


def test_catalog_is_cached_but_callers_cannot_mutate_it() -> None:
    first = catalog()
    first.pop("h100")
    assert "h100" in catalog()
    assert catalog()["h100"] is catalog()["h100"]


def test_every_number_has_provenance() -> None:
    for acc in catalog().values():
        assert set(acc.provenances) == set(_numbers(acc)), acc.id
        for name in _numbers(acc):
            prov = acc.provenance(name)
            assert prov.source and prov.date, (acc.id, name)
            assert prov.confidence in CONFIDENCES, (acc.id, name)


def test_provenance_of_unknown_field_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="memory_gb"):
        catalog()["k100-ai"].provenance("interconnect_gbs")  # not published for it


def test_types_and_positive_values() -> None:
    for acc in catalog().values():
        assert isinstance(acc.memory_gb, float) and acc.memory_gb > 0
        assert isinstance(acc.memory_bandwidth_gbs, float) and acc.memory_bandwidth_gbs > 0
        for value in acc.tflops_dense.values():
            assert isinstance(value, float) and value > 0
        for name in MONEY_FIELDS:
            price = getattr(acc, name)
            if price is not None:
                assert isinstance(price, PriceRange)
                assert isinstance(price.low, Decimal) and 0 < price.low <= price.high
        if acc.kind != "cpu":
            assert acc.tflops("bf16") or acc.tflops("fp16"), acc.id


def test_accelerators_are_frozen() -> None:
    acc = catalog()["h100"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        acc.memory_gb = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        acc.tflops_dense["fp8"] = 1.0  # type: ignore[index]


def test_invariants_between_generations() -> None:
    c = catalog()
    assert c["h200"].memory_gb > c["h100"].memory_gb
    assert c["h200"].memory_bandwidth_gbs > c["h100"].memory_bandwidth_gbs
    assert c["b200"].tflops("fp8") > c["h100"].tflops("fp8")  # type: ignore[operator]
    assert c["b200"].memory_bandwidth_gbs > c["h200"].memory_bandwidth_gbs
    assert c["h100"].tflops("bf16") > c["a100"].tflops("bf16")  # type: ignore[operator]
    assert c["mi325x"].memory_gb > c["mi300x"].memory_gb
    assert c["mi355x"].memory_gb > c["mi325x"].memory_gb
    # H20: more memory bandwidth than H100 but a fraction of its compute.
    assert c["h20"].tflops("bf16") < c["h100"].tflops("bf16") / 4  # type: ignore[operator]
    assert c["ascend-910c"].memory_gb > c["ascend-910b"].memory_gb
    for acc in c.values():
        fp8, bf16 = acc.tflops("fp8"), acc.tflops("bf16")
        if fp8 is not None and bf16 is not None:
            assert fp8 >= bf16, acc.id


def test_estimates_are_labelled_low() -> None:
    mlu590 = catalog()["mlu590"]
    assert all(mlu590.provenance(n).confidence == "low" for n in _numbers(mlu590))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H20", "h20"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA GB200", "gb200"),
        ("NVIDIA L40S", "l40s"),
        ("Ascend 910B", "ascend-910b"),
        ("Ascend910B3", "ascend-910b"),
        ("910B4", "ascend-910b4"),
        ("310P3", "atlas-300i-duo"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI325X", "mi325x"),
        ("HL-325L", "gaudi3"),
        ("MLU370-X8", "mlu370-x8"),
        ("K100_AI", "k100-ai"),
        ("AMD EPYC 9654 96-Core Processor", "cpu-2s-epyc-9654"),
        ("h100", "h100"),
        ("  MI355X  ", "mi355x"),
    ],
)
def test_find_matches_device_names(query: str, expected: str) -> None:
    assert find(query).id == expected


@pytest.mark.parametrize("query", ["banana", "NVIDIA GH200 480GB", "AMD Instinct MI300A", ""])
def test_find_refuses_nonsense_and_lists_ids(query: str) -> None:
    with pytest.raises(CatalogError, match="no accelerator") as info:
        find(query)
    for ident in ("h100", "mi300x", "ascend-910b"):
        assert ident in str(info.value)


def test_find_refuses_ambiguity() -> None:
    with pytest.raises(CatalogError, match="ambiguous"):
        find("MI300X or MI325X")


GOOD = """
schema_version = 1
[sources.ds]
title = "Datasheet"
date = "2024"

[[accelerator]]
id = "x1"
vendor = "V"
name = "X1"
kind = "gpu"
memory_gb = {value = 80, src = "ds", confidence = "high"}
memory_bandwidth_gbs = {value = 3350, src = "ds", confidence = "high"}
rental_usd_per_hour = {low = "2", high = "3.5", src = "ds", confidence = "low"}
[accelerator.tflops_dense]
bf16 = {value = 989, src = "ds", confidence = "high", date = "2025"}
"""


def test_load_minimal_entry() -> None:
    acc = load(GOOD)["x1"]
    assert acc.rental_usd_per_hour == PriceRange(Decimal("2"), Decimal("3.5"))
    assert acc.provenance("tflops_dense.bf16").date == "2025"
    assert acc.provenance("memory_gb").source == "Datasheet"
    assert acc.tdp_w is None


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            'confidence = "high"}\nmemory_bandwidth',
            'confidence = "sure"}\nmemory_bandwidth',
            "memory_gb",
        ),
        ("{value = 80, src", "{value = -80, src", "memory_gb"),
        ('memory_gb = {value = 80, src = "ds", confidence = "high"}\n', "", "memory_gb"),
        ('{value = 3350, src = "ds", ', '{value = 3350, src = "nowhere", ', "memory_bandwidth_gbs"),
        (
            '{value = 3350, src = "ds", confidence = "high"}',
            "{value = 3350}",
            "memory_bandwidth_gbs",
        ),
        ('low = "2"', "low = 2.0", "rental_usd_per_hour"),
        ('high = "3.5"', 'high = "1"', "rental_usd_per_hour"),
        ("bf16 = {value = 989", "bf17 = {value = 989", "tflops_dense.bf17"),
        ('kind = "gpu"', 'kind = "tpu"', "kind"),
        ('kind = "gpu"', 'kind = "gpu"\nmemroy_gb = 1', "memroy_gb"),
    ],
)
def test_broken_catalog_names_entry_and_field(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    assert old in GOOD
    path = tmp_path / "hardware.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(CatalogError) as info:
        load(path.read_text())
    message = str(info.value)
    assert "accelerator 'x1'" in message
    assert f"field {field!r}" in message


def test_duplicate_ids_and_bad_toml_are_refused() -> None:
    entry = GOOD[GOOD.index("[[accelerator]]") :]
    with pytest.raises(CatalogError, match="'x1': duplicate id"):
        load(GOOD + entry)
    with pytest.raises(CatalogError, match="not valid TOML"):
        load(GOOD + "\n[[accelerator\n")
    with pytest.raises(CatalogError, match="schema_version"):
        load(GOOD.replace("schema_version = 1", "schema_version = 2"))


def test_accelerators_per_node_default_to_a_baseboard_of_eight() -> None:
    accs = catalog()
    assert accs["h100"].per_node == 8 and accs["h100"].accelerators_per_node is None
    # an Atlas 800 A3 node: 8 x 910C packages, each die its own NPU device (vLLM-Ascend)
    assert accs["ascend-910c-die"].per_node == 16
    assert accs["ascend-910c-die"].provenance("accelerators_per_node").confidence == "high"
