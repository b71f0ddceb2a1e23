"""Which load generator saturates harder: aiohttp (loadgen.py) or wrk, straight at the synthetic
upstream, with no gateway in between. Whichever reaches more requests/s here is the one to use
for saturation runs, because it is the one less likely to be the bottleneck itself.

    python benchmarks/client_ceiling.py [--seconds 5] [--out benchmarks/results/client_ceiling.json]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import uvloop

from loadgen import LoadResult, chat_body, closed_loop, run_wrk
from synthetic_upstream import running

CONNECTIONS = (32, 128)


def _runs(url: str, stream: bool, seconds: int) -> list[tuple[int, LoadResult]]:
    body = chat_body("synthetic", stream)
    out = []
    for c in CONNECTIONS:
        out.append((c, uvloop.run(closed_loop(url, [body], "bench", c, seconds=seconds))))
        out.append((c, run_wrk(url, body, "bench", c, seconds, threads=1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=16, help="chunks per streamed answer")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/client_ceiling.json"))
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with running(chunks=args.chunks) as base:
        for stream in (False, True):
            for c, r in _runs(base + "/v1/chat/completions", stream, args.seconds):
                rows.append({"connections": c, **r.summary()})
                print(
                    f"{r.client:>8} stream={stream!s:5} c={c:<4} {r.rps:>9,.0f} req/s  "
                    f"p50 {r.pct(50):6.2f} ms  p99 {r.pct(99):6.2f} ms  errors {r.errors}"
                )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "chunks_per_stream": args.chunks, "runs": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
