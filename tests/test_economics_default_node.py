"""With no node file, this machine is costed by a default estimate that says so, names its
sources and the file that replaces it; a node file, even an empty one, always wins."""

import io
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tokenmill.cli import economics_commands, output
from tokenmill.economics import cost
from tokenmill.economics.accounting import Served, account
from tokenmill.economics.default_node import (
    DefaultNodeError,
    basis,
    default_node,
    load_basis,
    nodes_or_default,
)
from tokenmill.economics.live import estimated_power
from tokenmill.economics.local_machine import Machine, cpu_model, discover
from tokenmill.economics.nodes import parse_nodes
from tokenmill.economics.time_share import Span

GIB = 2**30
BOX = Machine("AMD EPYC 9654 96-Core Processor", 4, 16 * GIB)
X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nModel\t: Raspberry Pi 4 Model B\n"


def test_the_machine_is_read_from_the_operating_system(tmp_path: Path) -> None:
    assert cpu_model(X86) == "Intel(R) Xeon(R) Gold 6338"
    assert cpu_model(ARM) == "Raspberry Pi 4 Model B"
    assert cpu_model("processor\t: 0\n") is None
    info, limit = tmp_path / "cpuinfo", tmp_path / "memory.max"
    info.write_text(X86)
    limit.write_text(str(GIB))
    seen = discover(info, (limit,))
    assert seen.cpu_model == "Intel(R) Xeon(R) Gold 6338" and seen.logical_cpus >= 1
    assert seen.memory_bytes == GIB  # a container's limit below the machine's memory
    limit.write_text("max")  # cgroup v2: no limit
    unlimited = discover(info, (limit,))
    assert unlimited.memory_bytes is not None and unlimited.memory_bytes > 0


def test_the_default_prices_cpus_and_memory_at_sourced_rates(tmp_path: Path) -> None:
    made = default_node("local", BOX, tmp_path / "economics.toml")
    node = made.node
    # 4 vCPU x 0.031611 + 16 GiB x 0.004237 = 0.126444 + 0.067792
    assert node.acquisition == cost.Rented(Decimal("0.194236"), energy_included=True)
    assert node.deployments == ("*",) and node.facility.currency == "USD"
    assert node.power_w == 4 * 1.875 and node.idle_w == 0.0
    assert node.default_basis is not None and node.default_basis.startswith("default estimate")
    assert "4 vCPU x $0.031611 + 16.00 GiB x $0.004237 per hour = $0.194236/h" in (
        node.default_basis
    )
    report = made.report
    assert report["estimate"] is True and report["per_hour"] == "0.194236"
    assert report["machine"] == {"cpu_model": BOX.cpu_model, "logical_cpus": 4,
                                 "memory_gib": "16.00"}  # fmt: skip
    for figure in ("vcpu_per_hour", "memory_gib_per_hour", "watts_per_logical_cpu"):
        assert report["figures"][figure]["source"] and report["figures"][figure]["date"]
    assert str(tmp_path / "economics.toml") in report["replace"]


def test_the_example_node_file_reproduces_the_estimate(tmp_path: Path) -> None:
    made = default_node("edge box", BOX, tmp_path / "economics.toml")
    (parsed,) = parse_nodes(tomllib.loads(made.report["node_file_example"]))
    assert parsed.name == "edge box" and parsed.acquisition == made.node.acquisition
    assert parsed.power_w == made.node.power_w and parsed.default_basis is None


def test_unknown_memory_is_not_priced_and_says_so(tmp_path: Path) -> None:
    made = default_node("local", Machine(None, 2, None), tmp_path / "economics.toml")
    assert made.node.acquisition == cost.Rented(Decimal("0.063222"), energy_included=True)
    assert "memory unknown, not priced" in made.report["basis"]


def test_no_file_gives_the_default_and_any_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "economics.toml"
    nodes, origin = nodes_or_default(path, "local")
    assert [n.name for n in nodes] == ["local"] and nodes[0].default_basis is not None
    assert "default estimate" in origin["node_file"] and origin["default_node"]["node"] == "local"

    path.write_text('[node.rack1]\nfacility = "us-industrial"\n'
                    'cost = { mode = "rented", per_hour = "2.50" }\n')  # fmt: skip
    nodes, origin = nodes_or_default(path, "local")
    assert [n.name for n in nodes] == ["rack1"] and nodes[0].default_basis is None
    assert origin == {"node_file": str(path), "default_node": None}

    path.write_text("# costing off\n")
    nodes, origin = nodes_or_default(path, "local")
    assert nodes == [] and origin["default_node"] is None and "no nodes" in origin["node_file"]


def _report(tmp_path: Path) -> dict[str, Any]:
    nodes, origin = nodes_or_default(tmp_path / "economics.toml", "local")
    served = [Served("a", "acme", "m", "m", "m-0", Span(0.0, 1.0, 30.0), 1234, 567, True)]
    revenue = {("acme", "m", "m", "USD"): 10**9}
    return account(served, revenue, nodes, 0.0, 3600.0, estimated_power) | origin


def test_the_report_labels_the_default_cost(tmp_path: Path) -> None:
    report = _report(tmp_path)
    (node,) = report["nodes"]
    assert node["cost_estimated"] is True and node["cost_basis"].startswith("default estimate")
    assert Decimal(node["cost"]) > 0 and report["without_node"] == []
    assert node["inputs"]["acquisition"]["per_hour"] == report["default_node"]["per_hour"]
    assert node["energy"]["estimated"] is True  # the power is an estimate too


def test_report_economics_says_so_at_80_columns(tmp_path: Path) -> None:
    buffer = io.StringIO()
    narrow = Console(file=buffer, width=80, color_system=None)
    saved = (output.console, economics_commands.console)
    output.console = economics_commands.console = narrow
    try:
        economics_commands.show(_report(tmp_path))
    finally:
        output.console, economics_commands.console = saved
    text = buffer.getvalue()
    assert "…" not in text
    assert "local (estimate)" in text and "is a default estimate" in text
    flat = " ".join(text.split())
    assert f"write {tmp_path / 'economics.toml'}" in flat
    assert 'cost = { mode = "rented", per_hour = "' in text  # a file to start from


def test_the_shipped_figures_load_and_bad_ones_are_refused() -> None:
    b = basis()
    assert b.vcpu_per_hour == Decimal("0.031611") and b.memory_gib_per_hour == Decimal("0.004237")
    good = """schema_version = 1
[sources.s]
title = "t"
date = "2026"
[[default]]
id = "x"
facility = "us-industrial"
vcpu_per_hour = { value = "0.03", src = "s" }
memory_gib_per_hour = { value = MEMORY, src = "s" }
watts_per_logical_cpu = { value = 2, src = "s" }
"""
    assert load_basis(good.replace("MEMORY", '"0.004"')).memory_gib_per_hour == Decimal("0.004")
    with pytest.raises(DefaultNodeError, match=r"memory_gib_per_hour.*decimal strings"):
        load_basis(good.replace("MEMORY", "0.004"))  # a float is not money
    with pytest.raises(DefaultNodeError, match="src"):
        load_basis(good.replace("MEMORY", '"0.004"').replace('value = 2, src = "s"', "value = 2"))
