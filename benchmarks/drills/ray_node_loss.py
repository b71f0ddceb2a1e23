"""Drill: a Ray node is lost (`kill -9` of its processes) while its replica serves a bounded load;
the replica comes back on the other node that fits and serving goes on (issue 15, Ray runtime).

    python benchmarks/drills/ray_node_loss.py [--clients 3] [--after 10] [--max-tokens 16]

A real Ray cluster on this machine (`ray.cluster_utils.Cluster`, every node on 127.0.0.1): a
head declaring no accelerator and two nodes declaring one `NPU` each (a STAND-IN: a logical Ray
resource on a CPU-only machine; llama.cpp stands in for the Ascend engine). A real TokenMill
server joins it (`TOKENMILL_RUNTIME=ray`) and deploys one replica asking for an NPU. `clients`
threads loop chat requests; once every client has had an answer, the node running the replica
is killed: SIGKILL to its raylet and every Ray process under it, all at once (the engine itself
is left to die with its actor, as it would with the machine). The clients go on until each has
sent `after` requests begun after the replica was READY again on the other node, then stop.

Printed (JSON): requests sent, failed (any status but 200, or no answer) and when they failed
(before the kill, during the outage, after recovery), seconds from the kill to the replica's
READY on the other node, the node before and after, and llama-server processes left over.
Bounded: every request, wait and the whole load time out.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess

DEPLOYMENT = "on-npu"
LOOPBACK = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 80 << 20}
RECOVERY_LIMIT_S = 180.0  # the drill gives up waiting for the replica after this
LOAD_LIMIT_S = 420.0  # and on the whole load after this


@dataclass
class Answer:
    client: int
    began: float  # monotonic
    ended: float
    status: int  # 0: no answer at all
    error: str | None = None


class Load:
    """`clients` threads, each looping one chat request at a time until told to stop or the
    load's deadline passes."""

    def __init__(self, url: str, key: str, clients: int, max_tokens: int) -> None:
        self.url, self.key, self.max_tokens = url, key, max_tokens
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self._deadline = time.monotonic() + LOAD_LIMIT_S
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(clients)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()

    def count(self, client: int, began_after: float = 0.0) -> int:
        with self._lock:
            return sum(a.client == client and a.began >= began_after for a in self.answers)

    def _loop(self, client: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = 0
            while not self.stop.is_set() and time.monotonic() < self._deadline:
                began = time.monotonic()
                prompt = f"Count to {i % 7 + 3}."
                body = {"model": DEPLOYMENT, "max_tokens": self.max_tokens,
                        "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
                try:
                    resp = http.post(self.url + "/v1/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {self.key}"})  # fmt: skip
                    ok = resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] > 0
                    answer = Answer(client, began, time.monotonic(), resp.status_code,
                                    None if ok else resp.text[:200])  # fmt: skip
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    answer = Answer(client, began, time.monotonic(), 0, repr(exc)[:200])
                with self._lock:
                    self.answers.append(answer)
                if answer.error is not None:
                    time.sleep(0.2)  # a client that failed waits a moment, as one would
                i += 1


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def node_processes(raylet: int) -> tuple[list[int], list[int]]:
    """The raylet and every process under it (its workers, agents), and apart the engines
    among them: those are left to die with their actor."""
    tree, ray_pids, engines, todo = _children(), [], [], [raylet]
    while todo:
        pid = todo.pop()
        if "llama-server" in _cmdline(pid):
            engines.append(pid)
            continue
        ray_pids.append(pid)
        todo += tree.get(pid, [])
    return ray_pids, engines


def gone_within(pid: int, limit: float) -> float | None:
    """Seconds until process `pid` has exited (a zombie, or reaped); None if still running."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            return time.monotonic() - began
        time.sleep(0.01)
    return None


def llama_servers() -> set[int]:
    run = subprocess.run(["pgrep", "-f", "llama-server"], capture_output=True, text=True)
    return {int(p) for p in run.stdout.split()}


def replica_row(srv: ServerProcess) -> dict[str, Any] | None:
    rows = [r for r in srv.admin("GET", "/admin/replicas")["data"] if r["deployment"] == DEPLOYMENT]
    return rows[0] if rows else None


def wait_ready(srv: ServerProcess, not_on: str | None, limit: float) -> dict[str, Any] | None:
    """The replica's row once it is ready on a node other than `not_on`; None at `limit`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            row = replica_row(srv)
        except httpx.HTTPError:
            row = None
        if row and row["state"] == "ready" and row["node"] != not_on:
            return row
        time.sleep(0.1)
    return None


def drill(data_dir: Path, clients: int, after: int, max_tokens: int) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    engines_before = llama_servers()
    cluster = Cluster(initialize_head=True, head_node_args={**LOOPBACK, "include_dashboard": False})
    srv: ServerProcess | None = None
    try:
        nodes = {n.node_id: n for n in (cluster.add_node(**LOOPBACK, resources={"NPU": 1})
                                        for _ in range(2))}  # fmt: skip
        cluster.wait_for_nodes(timeout=60)
        env = {"TOKENMILL_RUNTIME": "ray", "TOKENMILL_RAY_ADDRESS": cluster.address,
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # fmt: skip
        srv = ServerProcess(data_dir, extra_env=env)
        srv.start(default_model=False)
        model = default_model_path()
        assert model is not None, "no model file: run `make model`"
        srv.admin("POST", "/admin/deployments", json={
            "name": DEPLOYMENT, "engine": "llamacpp", "model_path": str(model), "replicas": 1,
            "options": {"resource": "NPU", "devices": 1, "parallel": 2},
        })  # fmt: skip
        before = wait_ready(srv, None, RECOVERY_LIMIT_S)
        assert before is not None, f"replica not ready: {replica_row(srv)}"
        node_before = before["node"]
        assert node_before in nodes, (node_before, list(nodes))  # on an NPU node, not the head

        load = Load(srv.url, srv.new_tenant_key("drill"), clients, max_tokens)
        load.start()
        while not all(load.count(c) for c in range(clients)):  # every client served once
            time.sleep(0.05)

        victim = nodes[node_before]
        pids, engines = node_processes(victim.all_processes["raylet"][0].process.pid)
        assert engines == [before["pid"]], (engines, before)  # the replica's engine is there
        killed_at = time.monotonic()
        for pid in pids:  # all at once, as a machine that loses power
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        engine_gone_s = gone_within(before["pid"], 15.0)  # its actor is gone: so must it be
        cluster.remove_node(victim, allow_graceful=False)  # its bookkeeping (all dead already)

        after_row = wait_ready(srv, node_before, RECOVERY_LIMIT_S)
        recovered_at = time.monotonic()
        recovery_s = recovered_at - killed_at if after_row else None
        if after_row is not None:
            while (not all(load.count(c, recovered_at) >= after for c in range(clients))
                   and not load.stop.is_set() and time.monotonic() < load._deadline):  # fmt: skip
                time.sleep(0.1)
        load.join()
        answers = load.answers
        failed = [a for a in answers if a.error is not None]
        served_from = srv.admin("GET", "/admin/deployments")["data"]
        return {
            "clients": clients,
            "requests_sent": len(answers),
            "requests_ok": len(answers) - len(failed),
            "failed": len(failed),
            "failed_before_kill": sum(a.ended < killed_at for a in failed),
            "failed_in_outage": sum(
                a.ended >= killed_at and a.began < recovered_at for a in failed
            ),
            "failed_after_recovery": sum(a.began >= recovered_at for a in failed),
            "sent_after_recovery": sum(a.began >= recovered_at for a in answers),
            "failure_kinds": sorted({f"{a.status}: {a.error}"[:120] for a in failed})[:5],
            "processes_killed": len(pids),
            "old_engine_exited_s": None if engine_gone_s is None else round(engine_gone_s, 3),
            "recovery_s": None if recovery_s is None else round(recovery_s, 2),
            "node_before": node_before,
            "node_after": after_row["node"] if after_row else None,
            "node_after_declares_npu": bool(after_row and after_row["node"] in nodes),
            "restarts": sum(r["restarts"] for d in served_from for r in d["replica_status"]),
            "_engines_before": sorted(engines_before),
        }
    finally:
        if srv is not None:
            srv.stop()
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    args = drill_arguments(__doc__, 3, 10, 16, "after recovery", "loss")
    print_with_engines_left(drill(args.data_dir, args.clients, args.after, args.max_tokens))


def drill_arguments(
    doc: str | None, clients: int, after: int, max_tokens: int, after_what: str, name: str
) -> argparse.Namespace:
    """A Ray drill's command line: its load, and where its server keeps its data."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=clients)
    parser.add_argument("--after", type=int, default=after,
                        help=f"requests per client {after_what}")  # fmt: skip
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    args.data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix=f"tokenmill-ray-node-{name}-"))
    return args


def print_with_engines_left(figures: dict[str, Any]) -> None:
    """The figures as JSON, with how many llama-servers begun during the drill outlive it
    (an engine whose actor died goes with it, PDEATHSIG: given 10 s)."""
    engines_before = set(figures.pop("_engines_before"))
    deadline = time.monotonic() + 10
    while (left := llama_servers() - engines_before) and time.monotonic() < deadline:
        time.sleep(0.2)
    figures["engines_left"] = len(left)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
