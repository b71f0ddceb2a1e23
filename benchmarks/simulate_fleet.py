"""Routing policies at fleet scale, in the simulator that drives the gateway's own scheduler.

    python benchmarks/simulate_fleet.py [--replicas 16] [--scale 3] [--cache-blocks 3000]

Replays ../shared/traces/mooncake-synthetic.jsonl (Mooncake, FAST 2025, Apache-2.0; tenants
derived from each request's first prefix block) with arrivals `--scale` times faster, on
`--replicas` modelled replicas, once with prefix-affinity routing and once round-robin, and
reports prefix-block hit rate (against the trace's ideal) and TTFT percentiles. Each replica's
iterations take what the planner's performance model says (`perf_model.ReplicaIterations`):
`--model` at `--precision` on `--tp` x `--accelerator`, at `--engine`'s efficiencies on that
vendor (efficiency_data). (Until issue 17 it used `IterationModel`'s placeholder coefficients.)
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info
from tokenmill.economics.efficiency_data import efficiency_for
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import find_model
from tokenmill.economics.perf_model import ReplicaIterations
from tokenmill.economics.planner import device
from tokenmill.fleet.catalog import catalog
from tokenmill.scheduling.router import Picker, ReplicaPicker, RoundRobinPicker
from tokenmill.scheduling.simulator import FleetSimulator, FleetSpec
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
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--accelerator", default="h100")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate_fleet.json"))
    args = ap.parse_args()
    acc = catalog()[args.accelerator]
    model = with_layout(args.model, find_model(args.model).spec(args.precision))
    dev = device(acc, args.tp, model.compute_precision)
    iterations = ReplicaIterations(model, dev, efficiency_for(args.engine, acc.vendor))
    spec = FleetSpec(args.replicas, args.slots, args.cache_blocks, model=iterations)
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
            "iteration_model": {
                "model": args.model,
                "precision": args.precision,
                "device": iterations.device.name,
                "engine": args.engine,
                "efficiency": iterations.eff.source,
            },
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
