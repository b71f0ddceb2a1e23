"""Prefix-affinity routing against round-robin on real engines (issue 3, first acceptance item).

    python benchmarks/prefix_routing.py [--requests 60] [--rate 1.5]

Two llama.cpp replicas of SmolLM2-135M, 2 parallel slots each (llama.cpp keeps each slot's last
prompt cached), and 4 tenants, each with its own system prompt of ~1,000 words, sending at the
same Poisson rate. Affinity can keep two tenants' prompts on each replica; round-robin shows
every replica all four, more than its slots can keep. llama.cpp's host-RAM prompt cache is off
by default here (`--cache-ram-mib 0`): a replica's cache is then its slots' KV memory, as on a
GPU, where KV memory is what runs out. With this 135M model's ~23 KB of KV per token, the
default 8 GiB host cache holds every tenant's prompt, so any routing hits. The same workload
(same seed) runs under both policies, each on a fresh server; TTFT from `tokenmill bench`'s
runner, cached prompt tokens from the ledger (the engine's own count).
"""

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info, summarize
from tokenmill.bench.runner import run
from tokenmill.bench.workload import synthetic
from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess

TENANTS = ("t1", "t2", "t3", "t4")


def _policy(router: str, args: argparse.Namespace) -> dict[str, Any]:
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-routing-")),
                        extra_env={"TOKENMILL_ROUTER": router})  # fmt: skip
    try:
        srv.start(default_model=False)
        spec = {"name": "smol", "engine": "llamacpp", "model_path": str(default_model_path()),
                "replicas": 2, "options": {"parallel": 2, "threads": 1,
                                           "cache_ram_mib": args.cache_ram_mib}}  # fmt: skip
        srv.admin("POST", "/admin/deployments", json=spec)
        srv.wait_ready(120)
        keys = {t: srv.new_tenant_key(f"{router}-{t}") for t in TENANTS}
        shares = dict.fromkeys(TENANTS, 1.0)
        work = synthetic(shares, args.requests, args.rate, args.system_words, 16, 8)
        print(f"{router}: {len(work)} requests at {args.rate}/s ...", flush=True)
        outcomes, wall = asyncio.run(run(srv.url + "/v1", keys, "smol", work))
        summary = summarize(outcomes, wall, slo_ttft_s=2.0, slo_tpot_s=0.2)
        # the ledger writes in batches: wait until it counts every answered request
        answered = sum(o.status == 200 for o in outcomes)
        mine = [
            row
            for t in TENANTS
            for row in srv.tenant_usage(
                f"{router}-{t}", sum(o.tenant == t and o.status == 200 for o in outcomes)
            )
        ]
        assert sum(r["requests"] for r in mine) == answered, "the ledger lost requests"
        prompt = sum(r["prompt_tokens"] for r in mine)
        cached = sum(r["cached_tokens"] for r in mine)
        return {
            "summary": summary,
            "ledger_prompt_tokens": prompt,
            "ledger_cached_tokens": cached,
            "cached_share": cached / prompt if prompt else 0,
        }
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--rate", type=float, default=1.5)
    ap.add_argument("--system-words", type=int, default=1000)
    ap.add_argument(
        "--cache-ram-mib",
        type=int,
        default=0,
        help="llama.cpp's host-RAM prompt cache per replica (its default: 8192)",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/prefix_routing.json"))
    args = ap.parse_args()
    results: dict[str, Any] = run_info()
    for router in ("prefix-affinity", "round-robin"):
        results[router] = _policy(router, args)
        s = results[router]["summary"]
        share = results[router]["cached_share"]
        print(f"  TTFT p50 {s['ttft_s']['p50']:.3f}s p90 {s['ttft_s']['p90']:.3f}s, "
              f"cached share {share:.2f}, errors {s['errors']}")  # fmt: skip
    aff, rr = results["prefix-affinity"]["summary"], results["round-robin"]["summary"]
    results["ttft_p50_round_robin_over_affinity"] = rr["ttft_s"]["p50"] / aff["ttft_s"]["p50"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"round-robin / affinity, TTFT p50: {results['ttft_p50_round_robin_over_affinity']:.2f}x")


if __name__ == "__main__":
    main()
