"""Calibrate the simulator's iteration model on the real engine, run the real-engine
prefix-routing benchmark, replay it in the simulator and compare TTFT (issue 3: within 25%).

    python benchmarks/calibrate_simulator.py [--requests 40] [--rate 0.25]

1. On one llama.cpp replica configured as in benchmarks/prefix_routing.py (2 slots, 1 thread,
   no host prompt cache), read the engine's own `timings`: prefill ms per prompt token (b);
   decode ms per token with one and with two sequences running (a + c, a + 2c); and a short
   prompt's prefill after a long cached prefix, whose excess over `b` is its attention over
   the cached tokens (e).
2. Run benchmarks/prefix_routing.py's two policies on the real engines, then calibrate again:
   this VM's speed drifts by tens of percent over minutes, so the coefficients are the mean of
   the calibrations before and after.
3. Build the same workload (same generator, same seed) as scheduler jobs, with the gateway's
   own prompt blocks, and run it through `FleetSimulator` on 2 modelled replicas with both
   pickers, each replica caching one prompt per slot as llama.cpp does.
4. Compare the simulated TTFT p50/p90 with the measured ones.
"""

import argparse
import asyncio
import json
import math
from dataclasses import astuple
from pathlib import Path
from typing import Any

import httpx

from prefix_routing import TENANTS, _policy  # the benchmark beside this one
from tokenmill.bench.report import run_info
from tokenmill.bench.workload import BenchRequest, synthetic, words
from tokenmill.bootstrap import default_model_path
from tokenmill.engines.base import ReplicaSpec
from tokenmill.gateway.jobs import prompt_parts
from tokenmill.runtime.standalone import StandaloneEngine, standalone_llama_server
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.prefix import BLOCK_CHARS, prompt_blocks
from tokenmill.scheduling.router import Picker, ReplicaPicker, RoundRobinPicker
from tokenmill.scheduling.simulator import FleetSimulator, FleetSpec, IterationModel

SLOTS = 2
TEMPLATE_TOKENS = 14  # SmolLM2's chat template around a system and a user message


async def _timings(
    engine: httpx.AsyncClient, prompt: str, max_tokens: int, system: str | None = None
) -> dict[str, float]:
    messages = [{"role": "user", "content": prompt}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    body = {"messages": messages, "max_tokens": max_tokens, "ignore_eos": True,
            "temperature": 0}  # fmt: skip
    resp = await engine.post("/chat/completions", json=body)
    resp.raise_for_status()
    return dict(resp.json()["timings"])


async def _calibrate(engine: StandaloneEngine) -> IterationModel:
    async with httpx.AsyncClient(
        base_url=engine.base_url, headers=engine.headers, timeout=300
    ) as url:
        return await _measure(url)


async def _measure(url: httpx.AsyncClient) -> IterationModel:
    prefill = [await _timings(url, words(9000 + i, 1000), 1) for i in range(3)]
    b = sum(t["prompt_ms"] for t in prefill) / sum(t["prompt_n"] for t in prefill) / 1000
    one = await _timings(url, words(9100, 20), 64)
    two = await asyncio.gather(*(_timings(url, words(9200 + i, 20), 64) for i in range(2)))
    t1 = one["predicted_per_token_ms"] / 1000
    t2 = sum(t["predicted_per_token_ms"] for t in two) / 2 / 1000
    c = max(0.0, t2 - t1)
    system = words(9300, 1000)
    await _timings(url, words(9301, 16), 1, system)  # caches the system prompt in a slot
    hit = await _timings(url, words(9302, 16), 1, system)
    new = hit["prompt_n"]
    cached = hit.get("cache_n") or 1000
    e = max(0.0, (hit["prompt_ms"] / 1000 - b * new) / (new * cached))
    return IterationModel(a=max(0.0, t1 - c), b=b, c=c, e=e)


def _jobs(reqs: list[BenchRequest]) -> tuple[list[Job], int]:
    """The workload as the gateway would see it, with prompt tokens counted as llama.cpp
    counts these prompts (a word a token, plus the template), and tokens per prefix block."""
    jobs, per_block = [], []
    for i, r in enumerate(reqs):
        parts = prompt_parts("chat", {"messages": list(r.messages)})
        tokens = sum(len(str(m["content"]).split()) for m in r.messages) + TEMPLATE_TOKENS
        per_block.append(tokens * BLOCK_CHARS / sum(len(p) for p in parts))
        jobs.append(Job(id=f"j{i}", tenant=r.tenant, model="m", input_tokens=tokens,
                        max_output_tokens=r.max_tokens, arrived=r.at, deadline=math.inf,
                        prefix_blocks=prompt_blocks(parts)))  # fmt: skip
    return jobs, round(sum(per_block) / len(per_block))


def _simulate(model: IterationModel, picker: Picker, reqs: list[BenchRequest]) -> dict[str, Any]:
    jobs, block_tokens = _jobs(reqs)
    spec = FleetSpec(replicas=2, slots=SLOTS, cache="slots", block_tokens=block_tokens,
                     model=model)  # fmt: skip
    return FleetSimulator(spec, picker).run(jobs).summary()


def _calibrated() -> IterationModel:
    spec = ReplicaSpec("smol", 0, model_path=str(default_model_path()),
                       options={"parallel": SLOTS, "threads": 1, "cache_ram_mib": 0})  # fmt: skip
    with standalone_llama_server(spec) as engine:
        return asyncio.run(_calibrate(engine))


def _mean(a: IterationModel, b: IterationModel) -> IterationModel:
    return IterationModel(*((x + y) / 2 for x, y in zip(astuple(a), astuple(b), strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--rate", type=float, default=0.25)
    ap.add_argument("--out", type=Path,
                    default=Path("benchmarks/results/calibrate_simulator.json"))  # fmt: skip
    args = ap.parse_args()
    before = _calibrated()
    real_args = argparse.Namespace(requests=args.requests, rate=args.rate, system_words=1000,
                                   cache_ram_mib=0)  # fmt: skip
    measured = {name: _policy(name, real_args) for name in ("prefix-affinity", "round-robin")}
    model = _mean(before, _calibrated())
    print(f"calibrated: a={model.a * 1000:.1f} ms, b={model.b * 1000:.2f} ms/prompt token, "
          f"c={model.c * 1000:.1f} ms/decoding sequence, e={model.e * 1e6:.2f} us/(new x cached "
          "token)")  # fmt: skip

    reqs = synthetic(dict.fromkeys(TENANTS, 1.0), args.requests, args.rate, 1000, 16, 8)
    results: dict[str, Any] = {
        **run_info(),
        "iteration_model": vars(model),
        "calibration_before": vars(before),
    }
    for name, picker in (("prefix-affinity", ReplicaPicker()),
                         ("round-robin", RoundRobinPicker())):  # fmt: skip
        sim = _simulate(model, picker, reqs)
        real = measured[name]["summary"]["ttft_s"]
        results[name] = {
            "simulated_ttft_s": {"p50": sim["ttft_p50_s"], "p90": sim["ttft_p90_s"]},
            "measured_ttft_s": {"p50": real["p50"], "p90": real["p90"]},
            "simulated_prefix_hit_rate": sim["prefix_hit_rate"],
            "measured_cached_share": measured[name]["cached_share"],
            "p50_error": sim["ttft_p50_s"] / real["p50"] - 1,
            "p90_error": sim["ttft_p90_s"] / real["p90"] - 1,
        }
        r = results[name]
        print(f"{name}: TTFT p50 sim {sim['ttft_p50_s']:.3f}s vs real {real['p50']:.3f}s "
              f"({r['p50_error']:+.0%}), p90 sim {sim['ttft_p90_s']:.3f}s vs real "
              f"{real['p90']:.3f}s ({r['p90_error']:+.0%})")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
