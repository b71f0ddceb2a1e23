"""What the gateway costs: the same load straight to an upstream and through TokenMill.

    python benchmarks/gateway_overhead.py [--quick] [--out benchmarks/results/gateway_overhead.json]

Two upstreams: a fast synthetic one (benchmarks/synthetic_upstream.py) that isolates the gateway's
own cost, and the real llama.cpp engine with SmolLM2. One gateway process (one worker), metering
and the usage journal on (`--journal-sync`, default `write` as in `tokenmill up`), everything on
this machine over loopback. Targets (issue 2): >= 1,000 req/s non-streaming at saturation; at
100 req/s offered, <= 2 ms p50 / <= 10 ms p99 added; >= 20,000 streamed chunks/s; end-to-end
tokens/s through the gateway >= 97% of direct.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from loadgen import closed_loop_streams, open_loop, wrk_rps
from synthetic_upstream import running
from tokenmill.bootstrap import default_model_path
from tokenmill.engines.base import ReplicaSpec
from tokenmill.runtime.standalone import standalone_llama_server
from tokenmill.testing import ServerProcess

STREAM_CHUNKS = 200
PROMPTS = [
    "Explain what a load balancer does.",
    "Write a haiku about the sea.",
    "List three uses of copper.",
    "Why is the sky blue? Answer briefly.",
]


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def _synthetic(srv: ServerProcess, key: str, up: str, secs: int) -> dict[str, Any]:
    gw = srv.url + "/v1/chat/completions"
    direct = up + "/v1/chat/completions"
    out: dict[str, Any] = {}
    body = _chat("bench-fast", max_tokens=16)
    # The latency run goes first, on a quiet gateway: after a saturation run the ledger is
    # still catching up on thousands of records for a while, and that is not steady state.
    print("open loop at 100 req/s, direct and gateway interleaved ...", flush=True)
    # 200 arrivals/s in turns: 100 req/s offered to each of direct and gateway.
    d, g = asyncio.run(open_loop([direct, gw], body, key, 200, secs * 2))
    out["open_loop_100rps"] = {
        "direct_p50_ms": d.pct(50), "direct_p99_ms": d.pct(99),
        "gateway_p50_ms": g.pct(50), "gateway_p99_ms": g.pct(99),
        "added_p50_ms": g.pct(50) - d.pct(50), "added_p99_ms": g.pct(99) - d.pct(99),
        "requests_each": len(g.samples_ms), "errors": d.errors + g.errors,
    }  # fmt: skip
    print("saturation, non-streaming (wrk, 32 connections) ...", flush=True)
    out["saturation_rps_direct"] = wrk_rps(direct, body, key, 32, secs)
    out["saturation_rps_gateway"] = wrk_rps(gw, body, key, 32, secs)
    print("streaming relay (wrk, 8 connections) ...", flush=True)
    sbody = _chat("bench-fast", stream=True, stream_options={"include_usage": True})
    direct_streams = wrk_rps(direct, sbody, key, 8, secs)
    gw_streams = wrk_rps(gw, sbody, key, 8, secs)
    out["stream_chunks_per_s_direct"] = direct_streams * STREAM_CHUNKS
    out["stream_chunks_per_s_gateway"] = gw_streams * STREAM_CHUNKS
    return out


def _real_engine(srv: ServerProcess, key: str, rounds: int) -> dict[str, Any]:
    """The same llama-server measured bare (with its secret) and through the gateway."""
    spec = ReplicaSpec("smol", 0, model_path=str(default_model_path()), options={"parallel": 4})
    with standalone_llama_server(spec) as engine:
        srv.admin("POST", "/admin/deployments", json={
            "name": "bench-real", "engine": "openai", "endpoint": engine.base_url,
            "upstream_model": "smol", "options": {"api_key": engine.secret, "parallel": 4},
        })  # fmt: skip
        srv.wait_ready(30)
        sides = {
            "direct": (engine.base_url + "/chat/completions", engine.secret),
            "gateway": (srv.url + "/v1/chat/completions", key),
        }
        bodies = [
            {"model": "bench-real", "messages": [{"role": "user", "content": p}],
             "max_tokens": 64, "temperature": 0}
            for p in PROMPTS * 2
        ]  # fmt: skip
        totals = {"direct": [0, 0.0], "gateway": [0, 0.0]}
        for r in range(rounds):  # alternate, so drift on a noisy machine hits both sides
            for name, (url, bearer) in sides.items():
                s = asyncio.run(closed_loop_streams(url, bodies, bearer, concurrency=4))
                totals[name][0] += s.completion_tokens
                totals[name][1] += s.seconds
                print(f"  round {r + 1} {name}: {s.tokens_per_s:.1f} tok/s", flush=True)
    d_tps = totals["direct"][0] / totals["direct"][1]
    g_tps = totals["gateway"][0] / totals["gateway"][1]
    return {"tokens_per_s_direct": d_tps, "tokens_per_s_gateway": g_tps,
            "ratio": g_tps / d_tps, "rounds": rounds}  # fmt: skip


def _run(up: str, journal_sync: str, secs: int, quick: bool) -> dict[str, Any]:
    srv = ServerProcess(
        Path(tempfile.mkdtemp(prefix="tm-bench-")),
        extra_env={"TOKENMILL_JOURNAL_SYNC": journal_sync},
    )
    try:
        srv.start()
        key = srv.new_tenant_key("bench")
        fast = {"name": "bench-fast", "engine": "openai", "endpoint": up + "/v1"}
        srv.admin("POST", "/admin/deployments", json=fast)
        srv.wait_ready(30)
        results: dict[str, Any] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "python": platform.python_version(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "journal_sync": journal_sync,
            "command": " ".join(sys.argv),
        }  # fmt: skip
        results["synthetic"] = _synthetic(srv, key, up, secs)
        print("real engine: streamed tokens/s, 4 concurrent, direct vs gateway ...", flush=True)
        results["real_engine"] = _real_engine(srv, key, rounds=1 if quick else 3)
    finally:
        srv.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--journal-sync", choices=["fsync", "write"], default="write",
                    help="TOKENMILL_JOURNAL_SYNC for the gateway under test")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(f"benchmarks/results/gateway_overhead-{args.journal_sync}.json")
    secs = 3 if args.quick else 10
    with running(chunks=STREAM_CHUNKS) as up:
        results = _run(up, args.journal_sync, secs, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    uvloop.install()
    main()
