"""Every catalog part is priced and powered, so `tokenmill plan` can rank every one of them.

The figures the planner filters on (purchase price, rental price, TDP) must exist for every
accelerator, cite a [sources] entry, carry a confidence label, and keep money as decimal strings.
Estimates (`est-*` sources) must say so: confidence "low" and a note giving the method.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from typer.testing import CliRunner

from tokenmill.cli.main import app
from tokenmill.economics.models import find_model
from tokenmill.economics.planner import Demand, Plan, PlanOptions, Slo, plan
from tokenmill.fleet.catalog import CONFIDENCES, PriceRange, catalog

MONEY = ("purchase_price_usd", "rental_usd_per_hour")
PRICED_AND_POWERED = (*MONEY, "tdp_w")
ESTIMATE_PREFIX = "est-"


def _raw() -> dict[str, Any]:
    """The packaged catalog file as TOML, before the loader turns money into Decimal."""
    text = resources.files("tokenmill.fleet").joinpath("data/hardware.toml").read_text("utf-8")
    return tomllib.loads(text)


RAW = _raw()
SOURCES: dict[str, Any] = RAW["sources"]
ENTRIES: dict[str, dict[str, Any]] = {entry["id"]: entry for entry in RAW["accelerator"]}


def test_the_raw_file_and_the_loaded_catalog_list_the_same_parts() -> None:
    assert set(ENTRIES) == set(catalog())


@pytest.mark.parametrize("acc_id", sorted(ENTRIES))
@pytest.mark.parametrize("field", PRICED_AND_POWERED)
def test_every_part_has_a_sourced_labelled_figure(acc_id: str, field: str) -> None:
    table = ENTRIES[acc_id].get(field)
    assert isinstance(table, dict), f"{acc_id} has no {field}"
    assert table.get("src") in SOURCES, f"{acc_id}.{field} cites an unknown source"
    assert table.get("confidence") in CONFIDENCES
    acc = catalog()[acc_id]
    assert getattr(acc, field) is not None
    assert acc.provenance(field).confidence == table["confidence"]


@pytest.mark.parametrize("acc_id", sorted(ENTRIES))
@pytest.mark.parametrize("field", MONEY)
def test_money_is_written_as_decimal_strings(acc_id: str, field: str) -> None:
    table = ENTRIES[acc_id][field]
    amounts = [table[k] for k in ("value", "low", "high") if k in table]
    assert amounts, f"{acc_id}.{field} gives no amount"
    for amount in amounts:
        assert isinstance(amount, str), f"{acc_id}.{field}: {amount!r} is not a string"
        assert Decimal(amount) > 0
    price = getattr(catalog()[acc_id], field)
    assert isinstance(price, PriceRange) and isinstance(price.low, Decimal)


def test_an_estimate_is_labelled_low_and_says_how_it_was_made() -> None:
    estimates = 0
    for acc_id, entry in ENTRIES.items():
        tables = {k: v for k, v in entry.items() if isinstance(v, dict) and "src" in v}
        tables |= {f"tflops_dense.{k}": v for k, v in entry.get("tflops_dense", {}).items()}
        for field, table in tables.items():
            if str(table["src"]).startswith(ESTIMATE_PREFIX):
                estimates += 1
                assert table["confidence"] == "low", f"{acc_id}.{field}"
                assert table.get("note", "").startswith("estimate"), f"{acc_id}.{field}"
    assert estimates > 0  # the Chinese parts' rents, for one, are estimates


def test_a_price_range_is_ordered() -> None:
    for acc in catalog().values():
        for field in MONEY:
            price = getattr(acc, field)
            assert price.low <= price.high, f"{acc.id}.{field}"


# --- through the planner ----------------------------------------------------------------------

# q4_1 weights compute at fp16/bf16 on accelerators and fp32 on the CPU, so every part has the
# TFLOPS figure it needs; an easy SLO keeps the slow parts in.
MODEL = find_model("llama-3.1-8b")
DEMAND = Demand(1000, 200, requests_per_s=1)
EASY = Slo(ttft_s=30.0, tpot_s=1.0)


def _plan(acquire: str) -> Plan:
    opts = PlanOptions(precision="q4_1", acquire="owned" if acquire == "owned" else "rented")
    return plan(MODEL, DEMAND, EASY, opts)


@pytest.mark.parametrize("acquire", ["rented", "owned"])
def test_the_planner_excludes_no_part_for_a_missing_figure(acquire: str) -> None:
    result = _plan(acquire)
    missing = {e.accelerator.id: e.reason for e in result.excluded if e.kind == "missing figure"}
    assert missing == {}
    assert {o.accelerator.id for o in result.options} == set(catalog())


@pytest.mark.parametrize("acquire", ["rented", "owned"])
def test_the_plan_command_ranks_every_part(acquire: str) -> None:
    args = ["plan", "--model", "llama-3.1-8b", "--rate", "1", "--precision", "q4_1",
            "--ttft-ms", "30000", "--tpot-ms", "1000", "--acquire", acquire, "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["excluded"] == []
    assert {o["accelerator"] for o in data["options"]} == set(catalog())


def test_at_bf16_only_the_cpu_is_out_and_not_for_price_or_power() -> None:
    for acquire in ("rented", "owned"):
        opts = PlanOptions(acquire="owned" if acquire == "owned" else "rented")
        result = plan(MODEL, DEMAND, EASY, opts)
        reasons = {e.accelerator.id: e.reason for e in result.excluded}
        assert set(reasons) <= {"cpu-2s-epyc-9654"}
        for reason in reasons.values():
            assert "price" not in reason and "TDP" not in reason
