"""Live cost per 1M tokens on the real CPU replica after a bounded load (issue 6).

    python benchmarks/live_economics.py [--requests 60] [--rate 1.5] [--max-tokens 64]

Starts a server (llama.cpp + SmolLM2 on this machine's CPUs) with a node file describing this
machine, sends a bounded two-tenant load with `tokenmill bench`'s runner, then asks
`/admin/economics` for the window of the load and prints `tokenmill report economics`. The
node's figures are stated in NODE_FILE with where each came from; none is measured here
except the work itself (tokens, busy time) and the revenue the price book gave it.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info, summarize
from tokenmill.bench.runner import run
from tokenmill.bench.workload import synthetic
from tokenmill.testing import ServerProcess

# This VM rented by the hour: 2 vCPUs priced as a quarter of an 8-vCPU instance (AWS's
# published example: c5.2xlarge On-Demand $0.34/h in us-east-1; "example pricing, not
# current"). Power: 2 of 60 cores of a 350 W Xeon, ~12 W at full load; idle ~3 W. Both
# are estimates and the report labels the energy as one.
NODE_FILE = """
[node.local]
facility = "us-industrial"
power_w = 12
idle_w = 3
deployments = ["*"]
cost = { mode = "rented", per_hour = "0.085", energy_included = true }
"""
RESULTS = Path(__file__).parent / "results" / "live_economics.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1.5, help="requests/s, Poisson")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-econ-")))
    try:
        srv.start()
        (srv.data_dir / "economics.toml").write_text(NODE_FILE)
        keys = {t: srv.new_tenant_key(f"econ-{t}") for t in ("a", "b")}
        work = synthetic({"a": 3.0, "b": 1.0}, args.requests, args.rate, 200, 32, args.max_tokens)
        since = time.time()
        print(f"{len(work)} requests at {args.rate}/s ...", flush=True)
        outcomes, wall = asyncio.run(run(srv.url + "/v1", keys, "smollm2-135m", work))
        load = summarize(outcomes, wall, slo_ttft_s=2.0, slo_tpot_s=0.2)
        ok = load["ok"]
        time.sleep(1.0)  # the ledger writer batches
        until = time.time()
        report: dict[str, Any] = srv.admin(
            "GET", "/admin/economics", params={"since": since, "until": until}
        )
        hours = (time.time() - since) / 3600
        env = {**srv.env, "COLUMNS": "160"}
        cmd = [sys.executable, "-m", "tokenmill", "report", "economics", "--hours", f"{hours:.5f}"]
        shown = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        print(shown.stdout)
        RESULTS.write_text(json.dumps({**run_info(), "load": load, "node_file": NODE_FILE,
                                       "report": report}, indent=2))  # fmt: skip
        print(f"{ok}/{len(work)} ok in {wall:.1f} s, errors {load['errors']}; see {RESULTS}")
    finally:
        srv.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
