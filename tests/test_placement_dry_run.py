"""`POST /admin/deployments?dry_run=true` and `tokenmill models deploy --dry-run` on a real
server: the placement on this machine's node, with the running default deployment's memory
counted, and nothing created."""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ADMIN_KEY, ServerProcess

GB = 1e9
SMOLLM2_KV_PER_TOKEN = 2 * 30 * 3 * 64 * 2  # bytes: K and V, 30 layers, 3 KV heads of 64, f16


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("dry-run")).start()
    yield server
    server.stop()


def dry_run(srv: ServerProcess, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        srv.url + "/admin/deployments",
        params={"dry_run": "true"},
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )


def smollm2(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "engine": "llamacpp", "model_path": str(default_model_path()), **extra}


def test_a_dry_run_places_replicas_on_this_node_and_creates_nothing(srv: ServerProcess) -> None:
    before = srv.admin("GET", "/admin/deployments")["data"]
    options = {"parallel": 2, "ctx_per_slot": 4096, "cache_ram_mib": 0}
    body = smollm2("dry-a", replicas=2, options=options)
    resp = dry_run(srv, body)
    assert resp.status_code == 200
    plan = resp.json()
    assert plan["dry_run"] and plan["ok"] and plan["reason"] is None
    demand = plan["demand"]
    size = Path(str(default_model_path())).stat().st_size
    assert demand["weights_gb"] == size / GB
    assert demand["kv_gb"] == SMOLLM2_KV_PER_TOKEN * 2 * 4096 / GB
    assert demand["overhead_gb"] == 0.1 and demand["resource"] == "CPU"
    (node,) = plan["nodes"]
    assert [(r["replica"], r["node"], r["target"], r["cached"]) for r in plan["replicas"]] == [
        (1, node["name"], "CPU", True),
        (2, node["name"], "CPU", True),
    ]
    assert srv.admin("GET", "/admin/deployments")["data"] == before


def test_a_dry_run_that_does_not_fit_names_the_ram_it_lacks(srv: ServerProcess) -> None:
    # The prompt cache limit counts: 64 replicas of 8 GiB each fit no machine we run on.
    plan = dry_run(srv, smollm2("dry-b", replicas=64, options={"cache_ram_mib": 8192})).json()
    assert not plan["ok"]
    placed = [r for r in plan["replicas"] if "node" in r]
    last = plan["replicas"][-1]
    assert last["replica"] == len(placed) + 1 < 64
    assert last["reason"] == (
        f"no node can hold replica {last['replica']} of 64: dry-b needs weights 0.1 GB + "
        "KV 0.8 GB + 8.7 GB overhead"
    )
    (rejection,) = plan["rejections"]
    assert rejection["device"] == "CPU"
    assert re.fullmatch(
        r"\d+\.\d GB of RAM free of \d+\.\d GB, needs 9\.5 GB "
        r"\(weights 0\.1 GB \+ KV 0\.8 GB \+ 8\.7 GB overhead\)",
        rejection["reason"],
    )


def test_the_running_default_deployment_counts_against_the_node(srv: ServerProcess) -> None:
    alone = dry_run(srv, smollm2("dry-c", options={"cache_ram_mib": 0})).json()
    (node,) = alone["nodes"]
    (first,) = alone["replicas"]
    # spread: 100 x the share of RAM left after placing, the default deployment's included
    default = 0.1 + SMOLLM2_KV_PER_TOKEN * 4 * 8192 / GB + 8192 * 2**20 / GB
    size = Path(str(default_model_path())).stat().st_size / GB
    used = default + size + first["gb_per_device"]
    assert first["score"] == round(100 * (1 - used / node["memory_gb"]) + 10, 1)


def test_a_dry_run_refuses_what_create_would(srv: ServerProcess) -> None:
    resp = dry_run(srv, smollm2("dry-d", options={"ctx_per_slot": "lots"}))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "options"
    resp = dry_run(srv, {"name": "dry-e", "engine": "llamacpp", "model_path": "/nope.gguf"})
    assert resp.status_code == 400 and "model file not found" in resp.json()["error"]["message"]
    external = {"name": "dry-f", "engine": "openai", "endpoint": "http://127.0.0.1:9/v1"}
    assert dry_run(srv, external).json()["placement"] is None
    # a NUL byte in a path is a bad request, not a server error (schemathesis found a 500)
    resp = dry_run(srv, {"name": "dry-g", "engine": "llamacpp", "model_path": "a\u0000.gguf"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "model_path"


def test_the_cli_prints_the_placement(srv: ServerProcess) -> None:
    args = ["models", "deploy", "dry-g", "--path", str(default_model_path()), "--replicas", "2",
            "-o", "cache_ram_mib=0", "--dry-run"]  # fmt: skip
    env = {**srv.env, "COLUMNS": "200"}  # rich wraps at the terminal's width
    cmd = [sys.executable, "-m", "tokenmill", *args]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "dry-g (dry run, nothing created): 2 replica(s) on CPU" in out
    assert re.search(r"replica 1 -> \S+ CPU \[.*\]: 0\.95\d GB of RAM, score [\d.]+, holds", out)
    assert "replica 2 -> " in out and "placeable" in out
    assert "dry-g" not in [d["name"] for d in srv.admin("GET", "/admin/deployments")["data"]]


def test_a_dry_run_places_the_autoscaler_s_top(srv: ServerProcess) -> None:
    body = smollm2("dry-h", replicas=1, max_replicas=3, options={"cache_ram_mib": 0})
    plan = dry_run(srv, body).json()
    assert plan["demand"]["replicas"] == 3 and len(plan["replicas"]) == 3
