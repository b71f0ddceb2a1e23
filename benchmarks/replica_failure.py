"""Kill a replica mid-load (issue 3): nothing lost that had not started streaming, the ledger
matches what clients received, and the replica is back within 30 s.

    python benchmarks/replica_failure.py [--seconds 40] [--rate 3] [--kill-at 10]

Two llama.cpp replicas (2 slots, 1 thread each) under an open loop of streaming requests; at
`kill-at` seconds one replica's engine gets SIGKILL. Reported: outcomes split into served,
lost before their first token (must be 0: those are retried on the other replica) and broken
mid-stream (they end with an error event and are metered for what was delivered); ledger
against client token counts; seconds from the kill until the replica served again.
"""

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info
from tokenmill.bench.runner import Outcome, run
from tokenmill.bench.workload import synthetic
from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ServerProcess


def _delivered(o: Outcome) -> int:
    """Completion tokens the client got: the usage chunk's count, or one per content chunk
    seen (llama.cpp streams a token a chunk) when the stream broke before usage came."""
    if o.completion_tokens:
        return o.completion_tokens
    return 0 if o.ttft_s is None else 1 + len(o.gaps_s)


async def _kill_and_watch(srv: ServerProcess, at: float) -> dict[str, Any]:
    await asyncio.sleep(at)
    [dep] = (await asyncio.to_thread(srv.admin, "GET", "/admin/deployments"))["data"]
    victim = dep["replica_status"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < 120:
        [dep] = (await asyncio.to_thread(srv.admin, "GET", "/admin/deployments"))["data"]
        back = dep["replica_status"][0]
        if back["state"] == "ready" and back["pid"] != victim["pid"]:
            return {"replica": victim["id"], "back_after_s": time.monotonic() - killed}
        await asyncio.sleep(0.1)
    return {"replica": victim["id"], "back_after_s": None}


async def _load(srv: ServerProcess, key: str, args: argparse.Namespace) -> Any:
    work = synthetic({"load": 1.0}, int(args.seconds * args.rate), args.rate, 200, 16,
                     args.max_tokens)  # fmt: skip
    watch = asyncio.create_task(_kill_and_watch(srv, args.kill_at))
    outcomes, wall = await run(srv.url + "/v1", {"load": key}, "smol", work)
    return outcomes, wall, await watch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rate", type=float, default=3.0)
    ap.add_argument("--kill-at", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/replica_failure.json"))
    args = ap.parse_args()
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-kill-")))
    try:
        srv.start(default_model=False)
        spec = {"name": "smol", "engine": "llamacpp", "model_path": str(default_model_path()),
                "replicas": 2, "options": {"parallel": 2, "threads": 1}}  # fmt: skip
        srv.admin("POST", "/admin/deployments", json=spec)
        srv.wait_ready(120)
        key = srv.new_tenant_key("load")
        outcomes, wall, recovery = asyncio.run(_load(srv, key, args))
        [ledger] = srv.tenant_usage("load", requests=len(outcomes), timeout=30)
    finally:
        srv.stop()
    lost = [o for o in outcomes if not o.ok and o.ttft_s is None]
    broken = [o for o in outcomes if not o.ok and o.ttft_s is not None]
    client_tokens = sum(_delivered(o) for o in outcomes)
    results = {
        **run_info(),
        "requests": len(outcomes),
        "served": sum(o.ok for o in outcomes),
        "lost_before_streaming": len(lost),
        "lost_statuses": sorted({str(o.status) for o in lost}),
        "broken_mid_stream": len(broken),
        "broken_errors": sorted({str(o.error) for o in broken}),
        "ledger_requests": ledger["requests"],
        "ledger_completion_tokens": ledger["completion_tokens"],
        "client_completion_tokens": client_tokens,
        "ledger_matches_clients": ledger["completion_tokens"] == client_tokens,
        "recovery": recovery,
        "wall_s": wall,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "command")},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
