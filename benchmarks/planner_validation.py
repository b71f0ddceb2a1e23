"""Planner validation: the roofline performance model (`economics/perf_model.py`) against real
runs of the CPU engine, and against published GPU measurements.

    python benchmarks/planner_validation.py            # measure (~25 min), calibrate, compare
    python benchmarks/planner_validation.py --reuse    # refit on the points already in --out

1. One llama.cpp `llama-server` with SmolLM2-135M-Instruct (Q4_1) on 127.0.0.1: 1 thread (the
   other vCPU runs the load generator), 4 slots, no prompt cache (`--no-cache-prompt`,
   `--cache-ram 0`), `--ignore-eos` so every answer has the length asked for. `tokenmill
   bench`'s runner sends closed-loop load (c requests in flight) over a grid of prompt lengths
   x concurrency, after every slot has prefilled the longest prompt once; prompts are distinct
   pseudo-random words. Output lengths are drawn uniformly from [32, 96] (mean 64): with one
   fixed length, requests that start together also end together and stay in lock-step
   cohorts, which real traffic does not do. The grid is run twice (`--rounds`), forwards
   then backwards, and each point pools its two passes: this shared VM's speed drifts by
   10-20% over minutes, and one pass per point let a slow spell land on a few points.
2. The model is calibrated on the CALIBRATION points and predicts all the others (other prompt
   lengths, other concurrency): TTFT p50, TPOT p50 and output tokens/s, with the ratios.
   Only the stretch of a run with c requests in flight counts: the first c requests start
   together (a burst) and are left out, and so is what happens after the last request is sent
   (fewer remain in flight). Throughput is the tokens streamed in that stretch over its length.
3. Published GPU figures (PUBLISHED, each with its source) are predicted with the planner's
   default, uncalibrated `Efficiency`.

Results: benchmarks/results/planner_validation.json.
"""

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp

from planner_figures import predict_published
from tokenmill.bench.report import percentiles, run_info, summarize, tpot
from tokenmill.bench.runner import Outcome, run
from tokenmill.bench.workload import BenchRequest, words
from tokenmill.bootstrap import default_model_path
from tokenmill.economics.models import find_model
from tokenmill.economics.perf_model import (
    Device,
    MeasuredRun,
    ModelSpec,
    Workload,
    calibrate,
    predict,
)
from tokenmill.engines.base import ReplicaSpec
from tokenmill.runtime.standalone import StandaloneEngine, standalone_llama_server

# (prompt tokens with the chat template, concurrency); 1024 only at c=1, as time allows
GRID = (*((n, c) for n in (32, 128, 256, 512) for c in (1, 2, 4)), (1024, 1))
# Three prompt lengths alone (prefill's fixed, linear and quadratic parts) and one loaded run;
# the first design (128 and 512 tokens at c=1 and c=4) could not tell those parts apart.
CALIBRATION = ((32, 1), (256, 1), (1024, 1), (256, 4))
REQUESTS = {1: 8, 2: 12, 4: 16}  # per point, by concurrency (1024: 6)
OUTPUT_TOKENS = 64  # mean; drawn from [32, 96]
TEMPLATE_TOKENS = 30  # SmolLM2's chat template with its default system prompt, around the words
SLOTS, THREADS = 4, 1
QUIET_CPU, QUIET_WAIT_S = 0.3, 120.0  # wait for other jobs' CPU use to fall below, at most

# One core of this VM: Xeon (Sapphire Rapids class, AVX-512, 2 FMA units) at 2.3 GHz:
# 2.3e9 x 2 FMA x 16 fp32 lanes x 2 FLOPs. Bandwidth: a numpy copy of 1 GiB on one core
# moved 17-19 GB/s (read + write). Both are nominal; calibration absorbs what llama.cpp reaches.
CPU = Device("1 core of a 2-vCPU x86-64 VM (AVX-512)", flops=147.2e9, bandwidth=18e9,
             memory_bytes=24e9)  # fmt: skip


def _requests(prompt: int, concurrency: int, spread: float, seed: int) -> list[BenchRequest]:
    count = 6 if prompt > 512 else REQUESTS[concurrency]
    rng = random.Random(seed)  # a reproducible workload
    low, high = round(OUTPUT_TOKENS * (1 - spread)), round(OUTPUT_TOKENS * (1 + spread))
    return [
        BenchRequest(0.0, "a", ({"role": "user",
                                 "content": words(seed * 1000 + i, prompt - TEMPLATE_TOKENS)},),
                     rng.randint(low, high))
        for i in range(count)
    ]  # fmt: skip


def _engine() -> "contextlib.AbstractContextManager[StandaloneEngine]":
    """llama-server as TokenMill launches it, plus the flags that make each run a cold one."""
    spec = ReplicaSpec("smol", 0, model_path=str(default_model_path()),
                       options={"parallel": SLOTS, "threads": THREADS, "cache_ram_mib": 0,
                                "ctx_per_slot": 2048})  # fmt: skip
    return standalone_llama_server(spec, extra_args=("--ignore-eos", "--no-cache-prompt"))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _foreign_cpu(pid: int) -> float:
    """CPU seconds used so far by everything but the engine and this process."""
    busy = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    total = sum(int(busy[i]) for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return total - _cpu_seconds(pid) - own.user - own.system


def _wait_for_quiet(pid: int, budget: float) -> float:
    """Wait (up to `budget` seconds) until other jobs on this shared VM use < QUIET_CPU cores."""
    waited = 0.0
    while waited < budget:
        before = _foreign_cpu(pid)
        time.sleep(2.0)
        waited += 2.0
        if (_foreign_cpu(pid) - before) / 2.0 < QUIET_CPU:
            break
    return waited


def _run(
    engine: StandaloneEngine, reqs: list[BenchRequest], concurrency: int
) -> tuple[list[Outcome], float]:
    # llama-server answers a stream with "Keep-Alive" and then closes the socket; the runner
    # resends a request that failed on such a connection, but one connection per request
    # keeps that failed attempt out of the timings.
    fresh = functools.partial(aiohttp.TCPConnector, force_close=True)
    with mock.patch.object(aiohttp, "TCPConnector", fresh):
        keys = {"*": engine.secret}
        return asyncio.run(run(engine.base_url, keys, "smol", reqs, concurrency))


def _steady(outcomes: list[Outcome], c: int) -> dict[str, Any]:
    """The part of a closed-loop run with c requests in flight: after the first c (sent
    together, a burst) and before the last request is sent (then fewer remain in flight)."""
    by_send = sorted(outcomes, key=lambda o: o.sent_s)
    if c == 1:
        return {"first_token": by_send, "whole": by_send,
                "tokens": float(sum(o.completion_tokens for o in by_send)),
                "seconds": sum(o.e2e_s for o in by_send)}  # fmt: skip
    start, end = by_send[c].sent_s, by_send[-1].sent_s
    late = by_send[c:]
    chunks = 0  # streamed between start and end: one token per content chunk
    for o in outcomes:
        assert o.ttft_s is not None
        t = o.sent_s + o.ttft_s
        for gap in [0.0, *o.gaps_s]:
            t += gap
            chunks += start <= t <= end
    return {
        "first_token": [o for o in late if o.sent_s + (o.ttft_s or 0) <= end],
        "whole": [o for o in late if o.sent_s + o.e2e_s <= end] or late,
        "tokens": chunks * _tokens_per_chunk(outcomes),
        "seconds": end - start,
    }


def _tokens_per_chunk(outcomes: list[Outcome]) -> float:
    """A few tokens stream no text of their own (a character split over two): count them too."""
    chunks = sum(1 + len(o.gaps_s) for o in outcomes)
    return sum(o.completion_tokens for o in outcomes) / chunks


def _pass(
    engine: StandaloneEngine, prompt: int, c: int, spread: float, seed: int
) -> dict[str, Any]:
    """One closed-loop run of a grid point, with what else used the CPU meanwhile."""
    pid = engine.proc.pid
    cpu0, foreign0 = _cpu_seconds(pid), _foreign_cpu(pid)
    start = time.monotonic()
    outcomes, wall = _run(engine, _requests(prompt, c, spread, seed), c)
    failed = [o for o in outcomes if not o.ok or o.ttft_s is None]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed at {prompt}/{c}: {failed[0]}")
    return {"outcomes": outcomes, "wall": wall, "seconds": time.monotonic() - start,
            "engine_cpu_share": (_cpu_seconds(pid) - cpu0) / wall,
            "other_jobs_cpu": (_foreign_cpu(pid) - foreign0) / wall}  # fmt: skip


def _point(prompt: int, c: int, passes: list[dict[str, Any]]) -> dict[str, Any]:
    """A grid point from its passes: each pass's steady stretch, pooled."""
    outcomes = [o for p in passes for o in p["outcomes"]]
    steady = [_steady(p["outcomes"], c) for p in passes]
    ttfts = [o.ttft_s for s in steady for o in s["first_token"] if o.ttft_s is not None]
    tpots = [t for s in steady for o in s["whole"] if (t := tpot(o)) is not None]
    return {
        "prompt": prompt,
        "concurrency": c,
        "requests": len(outcomes),
        "steady_requests": [len(ttfts), len(tpots)],
        "input_tokens": statistics.fmean(o.prompt_tokens for o in outcomes),
        "output_tokens": statistics.fmean(o.completion_tokens for o in outcomes),
        "completion_tokens_per_content_chunk": _tokens_per_chunk(outcomes),
        "ttft_p50_s": percentiles(ttfts)["p50"],
        "tpot_p50_s": percentiles(tpots)["p50"],
        "output_tokens_per_s": sum(s["tokens"] for s in steady) / sum(s["seconds"] for s in steady),
        "engine_cpu_share": [p["engine_cpu_share"] for p in passes],
        "other_jobs_cpu": [p["other_jobs_cpu"] for p in passes],  # cores used by other processes
        "seconds": sum(p["seconds"] for p in passes),
        "waited_for_quiet_s": sum(p["waited_for_quiet_s"] for p in passes),
        "requests_sent_ttft_e2e_tokens": [
            [[o.sent_s, o.ttft_s, o.e2e_s, o.completion_tokens] for o in p["outcomes"]]
            for p in passes
        ],
        "summary_all_requests": [
            summarize(p["outcomes"], p["wall"], slo_ttft_s=2.0, slo_tpot_s=0.2) for p in passes
        ],
    }


def measure(spread: float, rounds: int) -> list[dict[str, Any]]:
    """Every grid point `rounds` times, the grid forwards then backwards, so that a slow spell
    of this shared VM is spread over the points instead of landing on a few of them."""
    passes: dict[tuple[int, int], list[dict[str, Any]]] = {key: [] for key in GRID}
    with _engine() as engine:
        pid = engine.proc.pid
        # Warm-up: every slot prefills the longest prompt once, so that no point is the first
        # to touch its KV memory (without it, each prompt length's first point ran slow).
        longest = max(prompt for prompt, _ in GRID)
        warm = [replace(r, max_tokens=1) for r in _requests(longest, SLOTS, spread, 999)]
        _run(engine, warm[:SLOTS], SLOTS)
        waits = QUIET_WAIT_S * rounds
        for r in range(rounds):
            for prompt, c in GRID if r % 2 == 0 else reversed(GRID):
                waited = _wait_for_quiet(pid, waits)
                waits -= waited
                seed = 10_000 * r + 100 * GRID.index((prompt, c)) + c
                p = _pass(engine, prompt, c, spread, seed) | {"waited_for_quiet_s": waited}
                passes[(prompt, c)].append(p)
                ttft = percentiles([o.ttft_s or 0.0 for o in p["outcomes"]])["p50"]
                print(f"  round {r + 1} prompt {prompt:5d} c={c}: TTFT p50 {ttft:.3f}s, "
                      f"other jobs {p['other_jobs_cpu']:.2f} cores, {p['seconds']:.0f}s "
                      f"(waited {waited:.0f}s)", flush=True)  # fmt: skip
    return [_point(prompt, c, passes[(prompt, c)]) for prompt, c in GRID]


def _smollm2() -> ModelSpec:
    return find_model("smollm2-135m").spec()


def validate_cpu(points: list[dict[str, Any]]) -> dict[str, Any]:
    model = _smollm2()
    runs = {
        (p["prompt"], p["concurrency"]): MeasuredRun(
            Workload(round(p["input_tokens"]), round(p["output_tokens"]), p["concurrency"]),
            p["ttft_p50_s"], p["tpot_p50_s"], p["output_tokens_per_s"])
        for p in points
    }  # fmt: skip
    eff = calibrate(model, CPU, [runs[k] for k in CALIBRATION])
    rows = []
    for key, measured in runs.items():
        pred = predict(model, CPU, eff, measured.workload)
        rows.append({
            "prompt": key[0], "concurrency": key[1], "held_out": key not in CALIBRATION,
            "input_tokens": measured.workload.input_tokens,
            "ttft_s": {"predicted": pred.ttft_s, "measured": measured.ttft_s,
                       "ratio": pred.ttft_s / measured.ttft_s},
            "tpot_s": {"predicted": pred.tpot_s, "measured": measured.tpot_s,
                       "ratio": pred.tpot_s / measured.tpot_s},
            "output_tokens_per_s": {"predicted": pred.output_tokens_per_s,
                                    "measured": measured.output_tokens_per_s,
                                    "ratio": pred.output_tokens_per_s
                                    / measured.output_tokens_per_s},
        })  # fmt: skip
    held = [r for r in rows if r["held_out"]]
    bounds = {
        m: [min(r[m]["ratio"] for r in held), max(r[m]["ratio"] for r in held)]
        for m in ("ttft_s", "tpot_s", "output_tokens_per_s")
    }
    judged = ("ttft_s", "output_tokens_per_s")
    within = sum(0.75 <= r[m]["ratio"] <= 1.25 for r in held for m in judged)
    return {"model": asdict(model), "device": asdict(CPU), "calibration_points": CALIBRATION,
            "efficiency": asdict(eff), "rows": rows, "held_out_ratio_range": bounds,
            "held_out_within_25pct": f"{within} of {2 * len(held)}"}  # fmt: skip


# ----------------------------------------------------------------------------------- GPUs

SOURCES = {
    "nim": {
        "title": "NVIDIA NIM LLM Benchmarking guide, 'Performance' (Llama-3.3-70b-instruct "
        "results, NIM container 1.8.0; measured with AIPerf)",
        "url": "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance.md",
        "date": "page version 1.0.0; NIM LLM 1.8.0 is a 2025 release; no date on the page",
    },
    "vllm-ci": {
        "title": "vLLM performance benchmark pipeline (Buildkite vllm/performance-benchmark), "
        "'Latency tests': input 32, output 128 tokens, batch size fixed (8), default dtype",
        "url": "https://buildkite.com/vllm/performance-benchmark/builds/9513 (H200), "
        "/builds/9555 (8xH100 machine), /builds/9523 (A100-SXM4-80GB)",
        "date": "builds 9513-9555; the dates are not in the page text we read",
    },
    "trtllm": {
        "title": "NVIDIA TensorRT-LLM docs, 'Performance of TensorRT-LLM' (docs/source/"
        "performance.md): peak throughput from v0.6.1, batch-1 first-token latency from v0.5",
        "url": "https://github.com/NVIDIA/TensorRT-LLM/blob/"
        "138f96d45f90b9667426f7c47297d8c06bafac73/docs/source/performance.md",
        "date": "2023 (v0.5.0 October 2023, v0.6.1 December 2023)",
    },
}


def _llama2(size: str, bits: float, kv_bits: float, precision: str) -> ModelSpec:
    """Llama 2 (Touvron et al., 2023, and meta-llama/Llama-2-*-hf config.json): 7B: 6.74B
    params, 32 layers, 32 heads, 32 KV heads; 70B: 68.98B, 80 layers, 64 heads, 8 KV heads
    (grouped-query attention); head_dim 128; context 4,096."""
    params, layers, heads, kv = {"7b": (6.74e9, 32, 32, 32), "70b": (68.98e9, 80, 64, 8)}[size]
    return ModelSpec(f"Llama-2-{size.upper()}", params, params, layers, heads, kv, 128, bits,
                     kv_bits, precision, 4096)  # fmt: skip


def _llama31(size: str, precision: str, kv_bits: float = 16) -> ModelSpec:
    return replace(find_model(f"llama-3.1-{size}").spec(precision), kv_bits=kv_bits)


@dataclass(frozen=True)
class Published:
    source: str
    what: str
    model: ModelSpec
    gpu: str  # catalog id
    count: int  # tensor parallel
    work: Workload
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    tokens_per_s: float | None = None  # output tokens/s, the whole replica
    latency_ms: float | None = None  # one batch, end to end


# NIM's fp8 profile: the KV cache is taken as fp8 too. With 16-bit KV, 50 sequences of 5,500
# tokens would not fit beside the weights in 2 x 80 GB, yet TTFT shows no queueing until c=100.
_L70_FP8 = _llama31("70b", "fp8", kv_bits=8)
_L2_7_FP8, _L2_70_FP8 = _llama2("7b", 8, 8, "fp8"), _llama2("70b", 8, 8, "fp8")
_L2_7_FP16, _L2_70_FP16 = _llama2("7b", 16, 16, "fp16"), _llama2("70b", 16, 16, "fp16")
PUBLISHED = (
    # NIM: Llama-3.3-70B (Llama-3.1-70B's architecture), fp8, TP2; "ITL" is our TPOT.
    Published("nim", "Llama-3.3-70B fp8, 2x H100, 5000 in / 500 out, c=1", _L70_FP8, "h100", 2,
              Workload(5000, 500, 1), ttft_ms=406.77, tpot_ms=18.58, tokens_per_s=51.67),
    Published("nim", "same, c=25", _L70_FP8, "h100", 2, Workload(5000, 500, 25),
              ttft_ms=688.69, tpot_ms=38.75, tokens_per_s=623.4),
    Published("nim", "same, c=50", _L70_FP8, "h100", 2, Workload(5000, 500, 50),
              ttft_ms=834.51, tpot_ms=59.73, tokens_per_s=814.37),
    Published("nim", "Llama-3.3-70B fp8, 2x H100, 500 in / 2000 out, c=1", _L70_FP8, "h100", 2,
              Workload(500, 2000, 1), ttft_ms=47.77, tpot_ms=18.91, tokens_per_s=52.85),
    # vLLM CI latency test: 8 prompts of 32 tokens generating 128 each, bf16, median latency.
    Published("vllm-ci", "Llama-3.1-8B bf16, 1x H200, batch 8, 32 in / 128 out",
              _llama31("8b", "bf16"), "h200", 1, Workload(32, 128, 8), latency_ms=834.014),
    Published("vllm-ci", "Llama-3-70B bf16, 4x H200, batch 8, 32 in / 128 out",
              _llama31("70b", "bf16"), "h200", 4, Workload(32, 128, 8), latency_ms=2075.36),
    Published("vllm-ci", "Llama-3.1-8B bf16, 1x H100, batch 8, 32 in / 128 out",
              _llama31("8b", "bf16"), "h100", 1, Workload(32, 128, 8), latency_ms=997.365),
    Published("vllm-ci", "Llama-3-70B bf16, 4x H100, batch 8, 32 in / 128 out",
              _llama31("70b", "bf16"), "h100", 4, Workload(32, 128, 8), latency_ms=2444.3),
    Published("vllm-ci", "Llama-3.1-8B bf16, 1x A100-80GB, batch 8, 32 in / 128 out",
              _llama31("8b", "bf16"), "a100", 1, Workload(32, 128, 8), latency_ms=1579.34),
    Published("vllm-ci", "Llama-3-70B bf16, 4x A100-80GB, batch 8, 32 in / 128 out",
              _llama31("70b", "bf16"), "a100", 4, Workload(32, 128, 8), latency_ms=3990.39),
    # TensorRT-LLM: batch-1 first-token latency (v0.5) and peak throughput (v0.6.1, static
    # batches; the table gives tokens/s per GPU, here times the GPUs).
    Published("trtllm", "Llama-2-7B fp8, 1x H100, batch 1, 128 in", _L2_7_FP8, "h100", 1,
              Workload(128, 1, 1), ttft_ms=7),
    Published("trtllm", "Llama-2-7B fp8, 1x H100, batch 1, 2048 in", _L2_7_FP8, "h100", 1,
              Workload(2048, 1, 1), ttft_ms=36),
    Published("trtllm", "Llama-2-70B fp8, 4x H100, batch 1, 2048 in", _L2_70_FP8, "h100", 4,
              Workload(2048, 1, 1), ttft_ms=109),
    Published("trtllm", "Llama-2-7B fp16, 1x A100, batch 1, 2048 in", _L2_7_FP16, "a100", 1,
              Workload(2048, 1, 1), ttft_ms=133),
    Published("trtllm", "Llama-2-70B fp16, 4x A100, batch 1, 2048 in", _L2_70_FP16, "a100", 4,
              Workload(2048, 1, 1), ttft_ms=377),
    Published("trtllm", "Llama-2-7B fp8, 1x H100, batch 768, 128 in / 128 out", _L2_7_FP8,
              "h100", 1, Workload(128, 128, 768), tokens_per_s=19694),
    Published("trtllm", "Llama-2-7B fp8, 1x H100, batch 112, 128 in / 2048 out", _L2_7_FP8,
              "h100", 1, Workload(128, 2048, 112), tokens_per_s=6818),
    Published("trtllm", "Llama-2-7B fp8, 1x H100, batch 80, 2048 in / 128 out", _L2_7_FP8,
              "h100", 1, Workload(2048, 128, 80), tokens_per_s=2244),
    Published("trtllm", "Llama-2-70B fp8, 2x H100, batch 1024, 128 in / 128 out", _L2_70_FP8,
              "h100", 2, Workload(128, 128, 1024), tokens_per_s=2657 * 2),
)  # fmt: skip


def validate_gpus() -> list[dict[str, Any]]:
    rows = []
    for pub in PUBLISHED:
        dev, p, latency = predict_published(pub.model, pub.gpu, pub.count, pub.work)
        predicted = {"ttft_ms": p.ttft_s * 1000, "tpot_ms": p.tpot_s * 1000,
                     "tokens_per_s": p.output_tokens_per_s,
                     "latency_ms": latency * 1000}  # fmt: skip
        metrics = {}
        for name, value in predicted.items():
            published = getattr(pub, name)
            if published is not None:
                metrics[name] = {"predicted": value, "published": published,
                                 "ratio": value / published}  # fmt: skip
        rows.append({"source": pub.source, "what": pub.what, "device": dev.name,
                     "count": pub.count, "workload": asdict(pub.work),
                     "fits_memory": p.fits_memory, "metrics": metrics})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------------- report


def _print(cpu: dict[str, Any], gpus: list[dict[str, Any]]) -> None:
    e = cpu["efficiency"]
    print(f"\ncalibrated on {cpu['calibration_points']}: compute {e['compute']:.4f}, "
          f"bandwidth {e['bandwidth']:.4f}, decode_compute {e['decode_compute']:.4f}, "
          f"decode_attention {e['decode_attention']:.4f}, prefill_attention "
          f"{e['prefill_attention']:.4f}, step {e['step_overhead_s'] * 1000:.2f} ms, request "
          f"{e['request_overhead_s'] * 1000:.1f} ms, random arrivals "
          f"{e['random_arrival_share']:.2f}")  # fmt: skip
    print("| prompt | c | set | TTFT p50 pred / meas (s) | ratio | TPOT p50 pred / meas (ms) | "
          "ratio | tok/s pred / meas | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in cpu["rows"]:
        t, d, x = r["ttft_s"], r["tpot_s"], r["output_tokens_per_s"]
        print(f"| {r['input_tokens']} | {r['concurrency']} | "
              f"{'held out' if r['held_out'] else 'calibration'} | "
              f"{t['predicted']:.2f} / {t['measured']:.2f} | {t['ratio']:.2f} | "
              f"{d['predicted'] * 1000:.0f} / {d['measured'] * 1000:.0f} | {d['ratio']:.2f} | "
              f"{x['predicted']:.1f} / {x['measured']:.1f} | {x['ratio']:.2f} |")  # fmt: skip
    print(f"held-out ratio ranges: {cpu['held_out_ratio_range']}; TTFT and tok/s within "
          f"+-25%: {cpu['held_out_within_25pct']}")  # fmt: skip
    print("\n| source | configuration | metric | predicted | published | ratio |")
    print("|---|---|---|---|---|---|")
    for g in gpus:
        for name, m in g["metrics"].items():
            print(f"| {g['source']} | {g['what']} | {name} | {m['predicted']:,.1f} | "
                  f"{m['published']:,.1f} | {m['ratio']:.2f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="refit on the points in --out")
    ap.add_argument("--output-spread", type=float, default=0.5,
                    help="output lengths uniform in mean x [1 - s, 1 + s]; 0: one")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=2, help="passes over the grid, pooled")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/planner_validation.json"))
    args = ap.parse_args()
    if args.reuse:
        old = json.loads(args.out.read_text())
        info, points = old["run_info"], old["measured"]
    else:
        info = {**run_info(), "output_spread": args.output_spread, "rounds": args.rounds}
        start = time.monotonic()
        print(f"measuring {len(GRID)} points ...", flush=True)
        points = measure(args.output_spread, args.rounds)
        info["measure_seconds"] = time.monotonic() - start
    cpu, gpus = validate_cpu(points), validate_gpus()
    _print(cpu, gpus)
    results = {"run_info": info, "measured": points, "cpu": cpu, "gpus": gpus,
               "gpu_sources": SOURCES}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
