"""A node's inventory through `local_inventory`: the CPU for real, vendor tools replaced by
stand-ins on PATH that print recorded output (tests/data/fleet/), so the real command lines,
timeouts and failures are exercised."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenmill.fleet import discovery
from tokenmill.fleet.detectors import cpu, tool

DATA = Path(__file__).parent / "data" / "fleet"


def _replay(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


@pytest.fixture
def bins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the stand-ins (and sh, cat, sleep), and no NVML library."""
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("sh", "cat", "sleep"):
        real = Path(f"/bin/{name}")
        (path / name).symlink_to(real if real.exists() else Path(f"/usr/bin/{name}"))
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: NVML absent
    return path


def test_cpu_of_this_machine() -> None:
    found = cpu.detect_cpu()
    assert found.cores == len(os.sched_getaffinity(0)) >= 1
    assert found.memory_gb > 0.5
    assert found.numa_nodes >= 1
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert found.isa == frozenset(flags) & cpu.RELEVANT_ISA
    if "amx_tile" in flags:  # this project's VMs: Sapphire Rapids
        assert {"amx_tile", "avx512f"} <= found.isa


def test_mixed_vendor_node_from_recorded_tools(bins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _replay(bins, "npu-smi", f'[ "$1" = info ] && cat {DATA}/npu_smi_info_910b3_x8.txt')
    _replay(bins, "cnmon", f"cat {DATA}/cnmon_mlu370_x8.txt")
    monkeypatch.setenv(discovery.ADDRESS_ENV, "10.0.0.7")
    inv = discovery.local_inventory()
    assert inv.address == "10.0.0.7"
    assert inv.cpu.cores >= 1
    assert [(d.resource, d.index, d.catalog_id) for d in inv.devices] == [
        *[("NPU", i, "ascend-910b") for i in range(8)],
        ("MLU", 0, "mlu370-x8"),
        ("MLU", 1, "mlu370-x8"),
    ]
    assert len(inv.of("NPU")) == 8 and len(inv.of("MLU")) == 2


def test_hygon_dcus_through_dtk_rocm_smi_counted_once(bins: Path) -> None:
    # No hy-smi here: the Hygon detector falls back to rocm-smi, the AMD one finds no AMD card.
    _replay(bins, "rocm-smi", f"cat {DATA}/rocm_smi_hygon_dcu_0x6210.json")
    found = discovery.discover()
    assert [(d.vendor, d.resource) for d in found.inventory.devices] == [("Hygon", "DCU")]
    assert found.problems == {}


def test_tools_that_fail_or_hang_are_reported_not_fatal(
    bins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tool, "TIMEOUT_S", 0.5)
    _replay(bins, "hl-smi", "echo 'hl-smi: device not found' >&2; exit 3")
    _replay(bins, "cnmon", "sleep 30 & sleep 30")  # a child too: both must end
    _replay(bins, "npu-smi", "echo 'something else entirely'")
    _replay(bins, "hy-smi", "echo '{not json'")
    _replay(bins, "rocm-smi", f"cat {DATA}/rocm_smi_radeon_rx7800xt.json")
    started = time.monotonic()
    found = discovery.discover()
    assert time.monotonic() - started < 5  # the hung tool and its child were ended, not awaited
    assert [d.vendor for d in found.inventory.devices] == ["AMD"]
    assert found.problems["hl-smi"] == "hl-smi exited 3: hl-smi: device not found"
    assert found.problems["cnmon"] == "cnmon gave no answer within 0.5 s"
    assert found.problems["npu-smi"] == "npu-smi printed no device we could read"
    assert "Expecting property name" in found.problems["hy-smi"]


def test_no_tools_means_cpu_only(bins: Path) -> None:
    found = discovery.discover()
    assert found.inventory.devices == () and found.problems == {}
    assert found.inventory.address == "127.0.0.1"


def test_node_inspect_command(bins: Path, tmp_path: Path) -> None:
    _replay(bins, "hl-smi", f"cat {DATA}/hl_smi_gaudi2_hl225_x8.txt")
    env = {**os.environ, "COLUMNS": "80"}
    cmd = [sys.executable, "-c", "from tokenmill.cli.main import app; app()", "node", "inspect"]
    data = json.loads(
        subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert data["cpu"]["cores"] >= 1 and data["problems"] == {}
    assert [d["model"] for d in data["devices"]] == ["HL-225"] * 8
    table = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "HL-225" in table and "1.19.1-6f47ddd" in table
    assert max(len(line) for line in table.splitlines()) <= 80
