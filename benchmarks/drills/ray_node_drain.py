"""Drill: a fleet node drained for maintenance (`tokenmill node drain`) while its replica serves
a bounded load; the replica moves to another node, and no request fails (issue 15, lifecycle).

    python benchmarks/drills/ray_node_drain.py [--clients 2] [--after 4] [--max-tokens 8]

A real Ray cluster on this machine (`ray.cluster_utils.Cluster`, every node on 127.0.0.1): a
head declaring no accelerator, node `alpha` declaring two `NPU`s and node `beta` one (a
STAND-IN: a logical Ray resource on a CPU-only machine; llama.cpp stands in for the Ascend
engine). Each node carries the name label `tokenmill node join` gives. A real TokenMill server
joins it (`TOKENMILL_RUNTIME=ray`).

1. `beta` is drained before anything runs, so the one replica asking for an NPU must land on
   `alpha` (the drain keeps placements off a node, not only moves what is there).
2. `beta` is undrained; `clients` threads loop chat requests.
3. `tokenmill node drain alpha` (the CLI, as an operator types it) while they run. `alpha`
   still has a free NPU, so the replacement landing on `beta` is the drain's doing, not a lack
   of room. The clients go on until each has sent `after` requests begun after the drain ended.

Printed (JSON): requests sent and failed, the seconds the drain took, the node before and
after, the devices Ray gave the replica, what `GET /admin/nodes/alpha` says at the end, and
llama-server processes left over. Bounded: every request, wait and the whole load time out.
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ray_node_loss import (
    LOOPBACK,
    Load,
    drill_arguments,
    gone_within,
    llama_servers,
    print_with_engines_left,
    replica_row,
    wait_ready,
)

from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess

DEPLOYMENT = "on-npu"  # ray_node_loss.Load's
LIMIT_S = 180.0  # a wait for a replica, or for the drain, gives up after this


def drain_with_cli(srv: ServerProcess, node: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tokenmill", "node", "drain", node, "--reason", "drill", "--json"],
        env=srv.env, capture_output=True, text=True, timeout=LIMIT_S,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"tokenmill node drain {node}: rc {run.returncode}: {run.stderr}")
    view: dict[str, Any] = json.loads(run.stdout)
    return view


def drill(data_dir: Path, clients: int, after: int, max_tokens: int) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    engines_before = llama_servers()
    cluster = Cluster(initialize_head=True, head_node_args={**LOOPBACK, "include_dashboard": False})
    srv: ServerProcess | None = None
    try:
        for name, npus in (("alpha", 2), ("beta", 1)):
            cluster.add_node(**LOOPBACK, resources={"NPU": npus},
                             labels={"tokenmill.io/node": name})  # fmt: skip
        cluster.wait_for_nodes(timeout=60)
        env = {"TOKENMILL_RUNTIME": "ray", "TOKENMILL_RAY_ADDRESS": cluster.address,
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # fmt: skip
        srv = ServerProcess(data_dir, extra_env=env)
        srv.start(default_model=False)
        kept_off = srv.admin("POST", "/admin/nodes/beta/drain", json={"reason": "not yet"})
        model = default_model_path()
        assert model is not None, "no model file: run `make model`"
        srv.admin("POST", "/admin/deployments", json={
            "name": DEPLOYMENT, "engine": "llamacpp", "model_path": str(model), "replicas": 1,
            "options": {"resource": "NPU", "devices": 1, "parallel": 2},
        })  # fmt: skip
        before = wait_ready(srv, None, LIMIT_S)
        assert before is not None, f"replica not ready: {replica_row(srv)}"
        srv.admin("DELETE", "/admin/nodes/beta/drain")

        load = Load(srv.url, srv.new_tenant_key("drill"), clients, max_tokens)
        load.start()
        while not all(load.count(c) for c in range(clients)):  # every client served once
            time.sleep(0.05)
        began = time.monotonic()
        drained = drain_with_cli(srv, before["node"])
        ended = time.monotonic()
        old_engine_gone_s = gone_within(before["pid"], 60.0)  # drained, then stopped
        after_row = wait_ready(srv, before["node"], 30.0)  # the one row left: the new replica
        while (not all(load.count(c, ended) >= after for c in range(clients))
               and time.monotonic() < load._deadline):  # fmt: skip
            time.sleep(0.1)
        load.join()
        failed = [a for a in load.answers if a.error is not None]
        return {
            "clients": clients,
            "requests_sent": len(load.answers),
            "failed": len(failed),
            "failure_kinds": sorted({f"{a.status}: {a.error}"[:120] for a in failed})[:5],
            "sent_during_drain": sum(a.began < ended and a.ended > began for a in load.answers),
            "sent_after_drain": sum(a.began >= ended for a in load.answers),
            "drain_s": round(ended - began, 2),
            "node_before": before["node"],
            "devices_before": before["devices"],
            "node_after": after_row["node"] if after_row else None,
            "devices_after": after_row["devices"] if after_row else None,
            "old_engine_exited_s": old_engine_gone_s and round(old_engine_gone_s, 2),
            "kept_off_while_drained": kept_off,
            "drain_answer": drained,
            "node_view_after": srv.admin("GET", f"/admin/nodes/{before['node']}"),
            "fleet_drained": srv.admin("GET", "/admin/fleet")["drained"],
            "_engines_before": sorted(engines_before),
        }
    finally:
        if srv is not None:
            srv.stop()
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    args = drill_arguments(__doc__, 2, 4, 8, "after the drain", "drain")
    print_with_engines_left(drill(args.data_dir, args.clients, args.after, args.max_tokens))


if __name__ == "__main__":
    sys.exit(main())
