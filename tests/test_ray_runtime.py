"""The `ray` runtime on a real multi-node Ray cluster on this machine (`ray.cluster_utils.Cluster`:
a head and a second node, each its own raylet, all on 127.0.0.1), driven by a real TokenMill
server (`TOKENMILL_RUNTIME=ray`) that joins it:

- a deployment asking for an NPU lands on the node that declares one, and not on the head.
  The NPU is a STAND-IN: the node declares a logical `NPU` resource on this CPU-only machine,
  and a llama.cpp replica stands in for the Ascend engine (Ray logs "Failed to detect NPU
  type" when a node declares NPU without Ascend's libraries: harmless here);
- a deployment of two replicas, one CPU each, on nodes with one CPU each: they run on two
  different nodes, serve through the one gateway, and the ledger holds exactly what the clients
  received.
"""

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess

ray = pytest.importorskip("ray", reason="the Ray runtime's tests need ray (the dev extra)")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.timeout(240)]

DATA = Path(__file__).parent / "data"
LOOPBACK = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 80 << 20}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str, str]]:
    """A head (1 CPU) and a node declaring one NPU (1 CPU): (cluster, head id, NPU node id).
    Their processes find a stand-in `npu-smi` printing recorded output of 8 Ascend 910B3
    (tests/data/fleet/SOURCES.md, tests/data/power/SOURCES.md), so each node's agent has
    accelerators to report and a power meter to read; this server's own PATH has none."""
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{_npu_smi_stand_in(tmp_path_factory.mktemp('bin'))}:{path}"
    try:
        c = Cluster(initialize_head=True, head_node_args={**LOOPBACK, "include_dashboard": False})
        npu = c.add_node(**LOOPBACK, resources={"NPU": 1})
    finally:
        os.environ["PATH"] = path
    try:
        c.wait_for_nodes(timeout=60)
        yield c, c.head_node.node_id, npu.node_id
    finally:
        ray.shutdown()
        c.shutdown()


def _npu_smi_stand_in(bins: Path) -> Path:
    tool = bins / "npu-smi"
    tool.write_text(f"""#!/bin/sh
case "$*" in
  "info") cat {DATA}/fleet/npu_smi_info_910b3_x8.txt ;;
  "info -l") cat {DATA}/power/npu_smi_info_l.txt ;;
  "info -t power -i "*) cat {DATA}/power/npu_smi_power.txt ;;
esac
""")
    tool.chmod(0o755)
    return bins


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cluster: tuple[Cluster, str, str]):
    # Ray turns a loopback address into this machine's network one before it connects; with
    # "clusters" off it keeps to loopback, where this test's nodes listen.
    env = {"TOKENMILL_RUNTIME": "ray", "TOKENMILL_RAY_ADDRESS": cluster[0].address,
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           # Round-robin, so that both nodes' replicas serve these alike prompts for certain.
           "TOKENMILL_ROUTER": "round-robin"}  # fmt: skip
    srv = ServerProcess(tmp_path_factory.mktemp("ray-server"), extra_env=env)
    srv.start(default_model=False)
    try:
        yield srv
    finally:
        srv.stop()


def _deploy(srv: ServerProcess, name: str, replicas: int, options: dict[str, Any]) -> None:
    model = default_model_path()
    assert model is not None
    srv.admin("POST", "/admin/deployments", json={
        "name": name, "engine": "llamacpp", "model_path": str(model), "replicas": replicas,
        "options": {**options, "parallel": 2},
    })  # fmt: skip


def _rows(srv: ServerProcess, deployment: str, ready: int, timeout: float = 90.0) -> list[dict]:
    """The deployment's replica rows once `ready` of them are ready (and written)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in srv.admin("GET", "/admin/replicas")["data"]
                if r["deployment"] == deployment]  # fmt: skip
        if sum(r["state"] == "ready" for r in rows) == ready:
            return rows
        assert time.monotonic() < deadline, f"{deployment} not ready: {rows}"
        time.sleep(0.3)


def _reached_only_over_tls_with_the_secret(row: dict) -> None:
    """The engine binds the node's loopback; from elsewhere only its TLS relay answers, with a
    certificate no public authority signed, and the engine still wants its secret."""
    endpoint = row["endpoint"]
    assert endpoint.startswith("https://127.0.0.1:"), endpoint
    argv = (Path("/proc") / str(row["pid"]) / "cmdline").read_bytes().split(b"\0")
    engine_at = (argv[argv.index(b"--host") + 1], int(argv[argv.index(b"--port") + 1]))
    assert engine_at[0] == b"127.0.0.1" and engine_at[1] != int(endpoint.rsplit(":", 1)[1][:-3])
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the relay: no answer
        httpx.get(endpoint.replace("https://", "http://") + "/models", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(endpoint + "/models", timeout=5)
    assert httpx.get(endpoint + "/models", timeout=5, verify=False).status_code == 401


def _ledger(data_dir: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(data_dir / "tokenmill.db") as db:
        rows = db.execute(
            "SELECT request_id, prompt_tokens, completion_tokens FROM usage_records"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_each_ray_node_reports_its_own_devices_and_power_under_its_name(
    server: ServerProcess, cluster: tuple[Cluster, str, str]
) -> None:
    _, head, npu = cluster
    deadline = time.monotonic() + 60
    while True:  # the agents report every 15 s, the first time at start
        nodes = {n["name"]: n for n in server.admin("GET", "/admin/fleet")["nodes"]}
        if {head, npu} <= set(nodes):
            break
        assert time.monotonic() < deadline, list(nodes)
        time.sleep(0.5)
    for name in (head, npu):  # each found 8 NPUs there (the server's own node found none)
        devices = nodes[name]["devices"]
        assert [(d["resource"], d["catalog_id"]) for d in devices] == [("NPU", "ascend-910b")] * 8
        assert nodes[name]["address"] == "127.0.0.1"
    metrics = server.metrics()
    labels = f'device="NPU7",model="Ascend 910B3",node="{npu}"'
    assert f"tokenmill_device_memory_bytes{{{labels}" in metrics
    # The power log, per node: 8 cards x 103.5 W (recorded npu-smi), measured, on each node.
    while True:
        with sqlite3.connect(server.data_dir / "tokenmill.db") as db:
            logged = set(db.execute("SELECT node, watts, estimated, basis FROM power_samples"))
        if {n for n, *_ in logged} >= {head, npu}:
            break
        assert time.monotonic() < deadline, logged
        time.sleep(0.5)
    for name in (head, npu):
        assert (name, 828.0, 0, "measured: npu-smi 8 device(s)") in logged, logged


def test_npu_deployment_lands_on_the_npu_node_and_two_replicas_on_two_nodes(
    server: ServerProcess, cluster: tuple[Cluster, str, str]
) -> None:
    _, head, npu = cluster
    # An accelerator asked for: only the (stand-in) NPU node has one.
    _deploy(server, "on-npu", 1, {"resource": "NPU", "devices": 1})
    [row] = _rows(server, "on-npu", ready=1)
    assert row["node"] == npu != head
    _reached_only_over_tls_with_the_secret(row)

    # Two replicas of one CPU each, on nodes of one CPU each: two nodes.
    _deploy(server, "spread", 2, {})
    rows = _rows(server, "spread", ready=2)
    assert {r["node"] for r in rows} == {head, npu}

    key = server.new_tenant_key("ray-tenant")
    received: dict[str, tuple[int, int]] = {}
    with httpx.Client(timeout=60) as client:
        for i in range(12):
            model = "spread" if i % 3 else "on-npu"
            resp = client.post(
                server.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": model, "max_tokens": 8,
                      "messages": [{"role": "user", "content": f"Count to {i}."}]},
            )  # fmt: skip
            assert resp.status_code == 200, resp.text
            usage = resp.json()["usage"]
            assert usage["completion_tokens"] > 0
            received[resp.headers["x-request-id"]] = (
                usage["prompt_tokens"],
                usage["completion_tokens"],
            )
    served = {r["id"]: r["served"] for d in server.admin("GET", "/admin/deployments")["data"]
              for r in d["replica_status"]}  # fmt: skip
    assert served["spread-0"] > 0 and served["spread-1"] > 0, served  # both nodes served

    # A clean stop (SIGTERM: uvicorn shuts down, then exits by the signal) drains the journal
    # into the ledger: Ray's own SIGTERM handler, had it stayed, would have killed us first.
    assert server.stop() in (0, -signal.SIGTERM)
    assert not list((server.data_dir / "journal").glob("usage-*.jsonl"))
    assert _ledger(server.data_dir) == received
