"""`tokenmill fleet` and per-accelerator telemetry in /metrics, from a real server whose node
has recorded vendor tools on its PATH (tests/data/fleet/: 8 Ascend 910B3 NPUs)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenmill.testing import ServerProcess

DATA = Path(__file__).parent / "data" / "fleet"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    bins = tmp_path_factory.mktemp("bin")
    tool = bins / "npu-smi"  # a stand-in printing recorded output (tests/data/fleet/SOURCES.md)
    tool.write_text(f'#!/bin/sh\n[ "$1" = info ] && cat {DATA}/npu_smi_info_910b3_x8.txt\n')
    tool.chmod(0o755)
    env = {"PATH": f"{bins}:{os.environ['PATH']}"}
    server = ServerProcess(tmp_path_factory.mktemp("fleet"), extra_env=env).start()
    yield server
    server.stop()


def test_the_fleet_shows_the_node_its_accelerators_and_its_replicas(srv: ServerProcess):
    done = subprocess.run([sys.executable, "-m", "tokenmill", "fleet", "--json"], env=srv.env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    data = json.loads(done.stdout)
    [node] = data["nodes"]
    assert [(d["resource"], d["catalog_id"]) for d in node["devices"]] == [
        ("NPU", "ascend-910b")
    ] * 8
    [replica] = data["replicas"]
    assert (replica["id"], replica["node"], replica["state"], replica["live"]) == (
        "smollm2-135m-0", node["name"], "ready", True,
    )  # fmt: skip
    shown = subprocess.run([sys.executable, "-m", "tokenmill", "fleet"], env=srv.env,
                           capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    table = shown.stdout
    assert "8 NPU" in table and "NPU7" in table and "smollm2-135m-0" in table


def test_each_accelerator_has_its_telemetry_in_metrics(srv: ServerProcess):
    deadline = time.monotonic() + 20
    while "tokenmill_device_memory_bytes" not in (text := srv.metrics()):
        assert time.monotonic() < deadline, "no device metrics"
        time.sleep(0.5)
    memory = [line for line in text.splitlines()
              if line.startswith("tokenmill_device_memory_bytes{")]  # fmt: skip
    assert len(memory) == 8 and all('vendor="Huawei"' in line for line in memory)
    assert any(line.startswith("tokenmill_device_power_watts{") for line in text.splitlines())
    assert any(line.startswith("tokenmill_device_healthy{") for line in text.splitlines())


def test_draining_the_only_node_of_the_local_runtime_is_refused_with_what_to_do(
    srv: ServerProcess,
):
    done = subprocess.run([sys.executable, "-m", "tokenmill", "node", "drain", "local"],
                          env=srv.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())
    assert "nowhere to move them" in said and "--runtime ray" in said, said
    data = srv.admin("GET", "/admin/fleet")
    assert data["drained"] == [] and data["replicas"][0]["state"] == "ready"


def test_the_local_runtime_never_loads_ray(srv: ServerProcess):
    """`make run` needs no Ray: the optional extra is imported only under --runtime ray (its
    core is a native module, `ray/_raylet*.so`, mapped into a process that imports it)."""
    assert srv.proc is not None
    assert "/ray/_raylet" not in Path(f"/proc/{srv.proc.pid}/maps").read_text()
