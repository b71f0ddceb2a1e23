"""Overload at 3x capacity on a real engine: refuse fast, keep interactive within its SLO,
shed batch first (issue 3).

    python benchmarks/overload.py [--seconds 60] [--factor 3] [--interactive-share 0.25]

One llama.cpp replica (2 slots). Its capacity is measured first (closed loop, 4 clients),
then an open loop offers `factor` times that for `seconds`: a chat tenant in the interactive
band and a batch tenant (`service_tier: "flex"`), in the given shares. Reported: answers by
status (no 5xx allowed), how fast every 429 came (the bar: 50 ms), TTFT of each band against
the interactive SLO, and which band absorbed the refusals.
"""

import argparse
import asyncio
import dataclasses
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tokenmill.bench.report import percentiles, run_info
from tokenmill.bench.runner import Outcome, run
from tokenmill.bench.workload import synthetic
from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess

TENANTS = ("chat", "batch")


def _band_report(outcomes: list[Outcome]) -> dict[str, Any]:
    refused = [o for o in outcomes if o.status == 429]
    return {
        "requests": len(outcomes),
        "served": sum(o.ok for o in outcomes),
        "refused_429": len(refused),
        "refusal_latency_ms": percentiles([o.e2e_s * 1000 for o in refused]),
        "refusal_latency_max_ms": max((o.e2e_s * 1000 for o in refused), default=None),
        "refused_after_50ms": sum(o.e2e_s > 0.05 for o in refused),
        "ttft_s": percentiles([o.ttft_s for o in outcomes if o.ok and o.ttft_s is not None]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--factor", type=float, default=3.0, help="offered load over capacity")
    ap.add_argument("--interactive-share", type=float, default=0.25)
    ap.add_argument("--slo-ttft-s", type=float, default=2.0, help="interactive p90 TTFT bar")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/overload.json"))
    args = ap.parse_args()
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-overload-")))
    try:
        srv.start(default_model=False)
        spec = {"name": "smol", "engine": "llamacpp", "model_path": str(default_model_path()),
                "options": {"parallel": 2, "threads": 2}}  # fmt: skip
        srv.admin("POST", "/admin/deployments", json=spec)
        srv.wait_ready(120)
        keys = {t: srv.new_tenant_key(t) for t in TENANTS}
        url = srv.url + "/v1"

        probe = synthetic({"chat": 1.0}, 40, 1.0, 0, 32, args.max_tokens, seed=7)
        outcomes, wall = asyncio.run(run(url, keys, "smol", probe, concurrency=4))
        capacity = sum(o.ok for o in outcomes) / wall
        rate = args.factor * capacity
        print(f"capacity {capacity:.2f} req/s; offering {rate:.2f} req/s for {args.seconds:.0f}s")

        share = args.interactive_share
        work = synthetic({"chat": share, "batch": 1 - share}, int(rate * args.seconds), rate, 0,
                         32, args.max_tokens)  # fmt: skip
        work = [dataclasses.replace(r, service_tier="flex") if r.tenant == "batch" else r
                for r in work]  # fmt: skip
        outcomes, wall = asyncio.run(run(url, keys, "smol", work))
    finally:
        srv.stop()

    statuses = Counter(str(o.status) for o in outcomes)
    bands = {t: _band_report([o for o in outcomes if o.tenant == t]) for t in TENANTS}
    results = {
        **run_info(),
        "capacity_req_per_s": capacity,
        "offered_req_per_s": rate,
        "wall_s": wall,
        "statuses": dict(statuses),
        "server_errors_5xx": sum(o.status is not None and o.status >= 500 for o in outcomes),
        "no_answer": sum(o.status is None for o in outcomes),
        "bands": {"interactive": bands["chat"], "batch": bands["batch"]},
        "interactive_slo_ttft_s": args.slo_ttft_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"statuses {dict(statuses)}; 5xx {results['server_errors_5xx']}, "
          f"no answer {results['no_answer']}")  # fmt: skip
    for name, b in results["bands"].items():
        print(f"  {name}: {b['served']}/{b['requests']} served, {b['refused_429']} refused "
              f"(429 latency max {b['refusal_latency_max_ms']} ms), TTFT p50 "
              f"{b['ttft_s']['p50']} p90 {b['ttft_s']['p90']}")  # fmt: skip


if __name__ == "__main__":
    main()
