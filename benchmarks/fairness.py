"""VTC against FCFS on a real engine: one heavy tenant must not starve a light one (issue 3).

    python benchmarks/fairness.py [--seconds 90] [--rate 6] [--ratio 10]

Tenant A offers `ratio` times tenant B's load, Poisson, together above the replica's capacity.
The same workload (same seed) runs twice, each on a fresh server: with the weighted virtual token
counter (TOKENMILL_FAIRNESS=vtc, the default) and with first come, first served (fcfs). Reported
per policy: each tenant's offered and served tokens/s, TTFT percentiles, refusals, and the
largest service gap while both were backlogged against the VTC bound.
"""

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tokenmill.bench.fairness import gap, tokens_per_s
from tokenmill.bench.report import percentiles, run_info
from tokenmill.bench.runner import Outcome, run
from tokenmill.bench.workload import synthetic
from tokenmill.bootstrap import default_model_path
from tokenmill.scheduling.core import Limits
from tokenmill.scheduling.fair_queue import TokenCosts
from tokenmill.testing import ServerProcess

PARALLEL = 2


def _policy(fairness: str, args: argparse.Namespace) -> dict[str, Any]:
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-fair-")),
                        extra_env={"TOKENMILL_FAIRNESS": fairness})  # fmt: skip
    try:
        srv.start(default_model=False)
        spec = {"name": "smol", "engine": "llamacpp", "model_path": str(default_model_path()),
                "replicas": 1, "options": {"parallel": PARALLEL, "threads": 2}}  # fmt: skip
        srv.admin("POST", "/admin/deployments", json=spec)
        srv.wait_ready(120)
        keys = {t: srv.new_tenant_key(f"{fairness}-{t}") for t in ("a", "b")}
        requests = int(args.seconds * args.rate)
        work = synthetic({"a": args.ratio, "b": 1.0}, requests, args.rate, 0,
                         args.prompt_words, args.max_tokens)  # fmt: skip
        print(f"{fairness}: {len(work)} requests at {args.rate}/s ...", flush=True)
        outcomes, wall = asyncio.run(run(srv.url + "/v1", keys, "smol", work))
        return _report(outcomes, wall)
    finally:
        srv.stop()


def _report(outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    costs = TokenCosts()
    served = [o for o in outcomes if o.ok]
    # A request's tokens, refused or not: its prompt as served ones show, its output as the
    # tenant's served ones average (what it would have received).
    per_req = {t: [o.prompt_tokens + o.completion_tokens for o in served if o.tenant == t]
               for t in ("a", "b")}  # fmt: skip
    tenants: dict[str, Any] = {}
    for t in ("a", "b"):
        mine = [o for o in outcomes if o.tenant == t]
        mean = sum(per_req[t]) / len(per_req[t]) if per_req[t] else 0.0
        tenants[t] = {
            "requests": len(mine),
            "served": sum(o.ok for o in mine),
            "refused_429": sum(o.status == 429 for o in mine),
            "other_errors": sum(not o.ok and o.status != 429 for o in mine),
            "offered_tokens_per_s": len(mine) * mean / wall,
            "served_tokens_per_s": tokens_per_s(outcomes, t, wall),
            "ttft_s": percentiles([o.ttft_s for o in mine if o.ttft_s is not None]),
        }
    capacity = sum(t["served_tokens_per_s"] for t in tenants.values())  # both saturate it
    largest = max((costs.of_input(o.prompt_tokens) + costs.of_output(o.completion_tokens)
                   for o in served), default=0.0)  # fmt: skip
    g = gap(outcomes, "a", "b", costs)
    b = tenants["b"]
    b_entitled = min(b["offered_tokens_per_s"], capacity / 2)  # equal weights: half each
    return {
        "wall_s": wall,
        "tenants": tenants,
        "capacity_tokens_per_s": capacity,
        "b_served_over_entitled": b["served_tokens_per_s"] / b_entitled if b_entitled else None,
        "service_gap": g.service_gap,
        "both_backlogged_s": g.backlogged_s,
        # (slots + 1) x the largest request's cost, plus the locality slack: the bound the
        # scheduler's property tests hold it to
        "vtc_bound": (PARALLEL + 1) * largest + Limits().locality_slack,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=90.0, help="how long load is offered")
    ap.add_argument("--rate", type=float, default=6.0, help="requests/s, both tenants")
    ap.add_argument("--ratio", type=float, default=10.0, help="A's load over B's")
    ap.add_argument("--prompt-words", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fairness.json"))
    args = ap.parse_args()
    results: dict[str, Any] = run_info()
    for fairness in ("vtc", "fcfs"):
        r = results[fairness] = _policy(fairness, args)
        for t, v in r["tenants"].items():
            print(f"  {t}: offered {v['offered_tokens_per_s']:.0f} tok/s, served "
                  f"{v['served_tokens_per_s']:.0f}, TTFT p90 {v['ttft_s']['p90']}, "
                  f"429s {v['refused_429']}, errors {v['other_errors']}")  # fmt: skip
        print(f"  B served/entitled {r['b_served_over_entitled']:.2f}; service gap "
              f"{r['service_gap']:.0f} (bound {r['vtc_bound']:.0f}) over "
              f"{r['both_backlogged_s']:.1f}s both backlogged")  # fmt: skip
    p90 = {f: results[f]["tenants"]["b"]["ttft_s"]["p90"] for f in ("vtc", "fcfs")}
    results["b_ttft_p90_fcfs_over_vtc"] = p90["fcfs"] / p90["vtc"] if p90["vtc"] else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"B's TTFT p90, FCFS over VTC: {results['b_ttft_p90_fcfs_over_vtc']:.1f}x")


if __name__ == "__main__":
    main()
