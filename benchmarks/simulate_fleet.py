"""Routing policies at fleet scale, in the simulator that drives the gateway's own scheduler.

    python benchmarks/simulate_fleet.py [--replicas 16] [--scale 3] [--cache-blocks 3000]

Replays ../shared/traces/mooncake-synthetic.jsonl (Mooncake, FAST 2025, Apache-2.0; tenants
derived from each request's first prefix block) with arrivals `--scale` times faster, on
`--replicas` modelled replicas, once with prefix-affinity routing and once round-robin, and
reports prefix-block hit rate (against the trace's ideal) and TTFT percentiles. The iteration
model's coefficients are placeholders for a mid-size GPU replica (`IterationModel`), not yet
calibrated against a real engine.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info
from tokenmill.scheduling.router import Picker, ReplicaPicker, RoundRobinPicker
from tokenmill.scheduling.simulator import FleetSimulator, FleetSpec, IterationModel
from tokenmill.scheduling.traces import ideal_hit_rate, mooncake_jobs

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "mooncake-synthetic.jsonl"


def _run(spec: FleetSpec, picker: Picker, trace: Path, scale: float) -> dict[str, Any]:
    started = time.perf_counter()
    result = FleetSimulator(spec, picker).run(mooncake_jobs(trace, time_scale=scale))
    return {**result.summary(), "wall_s": time.perf_counter() - started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--scale", type=float, default=3.0, help="arrival-rate multiplier")
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--cache-blocks", type=int, default=3000, help="512-token blocks per replica")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate_fleet.json"))
    args = ap.parse_args()
    spec = FleetSpec(args.replicas, args.slots, args.cache_blocks, model=IterationModel())
    ideal = ideal_hit_rate(list(mooncake_jobs(args.trace)))
    runs = {
        "prefix_affinity": _run(spec, ReplicaPicker(), args.trace, args.scale),
        "round_robin": _run(spec, RoundRobinPicker(), args.trace, args.scale),
    }
    aff, rr = runs["prefix_affinity"], runs["round_robin"]
    out = {
        **run_info(),
        "fleet": {
            "replicas": args.replicas,
            "slots": args.slots,
            "cache_blocks": args.cache_blocks,
            "scale": args.scale,
            "iteration_model": vars(spec.model),
        },
        "ideal_hit_rate": ideal,
        "runs": runs,
        "affinity_hit_rate_vs_ideal": aff["prefix_hit_rate"] / ideal,
        "ttft_p90_round_robin_over_affinity": rr["ttft_p90_s"] / aff["ttft_p90_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
