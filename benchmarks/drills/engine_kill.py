"""Drill: kill only the engine process (not TokenMill) while requests are queued, and see that
the queued requests go to the replacement engine as soon as it is ready (issue 14, finding 7).

    python benchmarks/drills/engine_kill.py [--requests 36] [--parallel 4] [--max-tokens 32]
    python benchmarks/drills/engine_kill.py --no-kill      # the same load, no kill: a baseline

One llama.cpp replica (the real SmolLM2 engine, on 127.0.0.1 only) gets `requests` chat
requests at once, more than its slots, so most wait in the gateway's queue; when the first
answer is back its llama-server gets SIGKILL. Printed (JSON): requests sent, completed, 429s
and other statuses, how many were still waiting when it died, seconds from the kill until the
supervisor declared the replacement ready, from then until the replacement was handed its
first request (the gateway's own dispatch time, from the usage records), and the longest any
request went on after the replacement was ready. Bounded: every request and wait times out.
"""

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tokenmill.bootstrap import default_model_path
from tokenmill.testing import ADMIN_KEY, ServerProcess

DEPLOYMENT = "smol"
READY_WITHIN_S = 120.0
READY_LINE = f"replica {DEPLOYMENT}-0: starting -> ready"


@dataclass
class Answer:
    request_id: str | None
    status: int  # 0: no answer at all
    ended: float  # wall clock


async def _one(client: httpx.AsyncClient, key: str, i: int, max_tokens: int) -> Answer:
    body = {
        "model": DEPLOYMENT,
        "messages": [{"role": "user", "content": f"Write a short story, number {i}."}],
        "max_tokens": max_tokens,
    }
    try:
        resp = await client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return Answer(resp.headers.get("x-request-id"), resp.status_code, time.time())
    except httpx.HTTPError:
        return Answer(None, 0, time.time())


def _ready_times(log: Path) -> list[float]:
    """When the supervisor declared the replica ready, each time (wall clock, from its log)."""
    times = []
    for line in log.read_text(errors="replace").splitlines():
        if READY_LINE in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())
    return times


def _dispatched(data_dir: Path, ids: list[str]) -> dict[str, float]:
    """When the gateway handed each request to an engine (its last try), from its usage record."""
    with sqlite3.connect(data_dir / "tokenmill.db") as db:
        rows = db.execute(
            "SELECT request_id, created_at, queued_ms FROM usage_records"
            f" WHERE request_id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
    return {rid: created + (queued or 0.0) / 1e3 for rid, created, queued in rows}


async def _load(srv: ServerProcess, key: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.requests + 4)
    timeout = args.queue_wait + 90
    async with httpx.AsyncClient(base_url=srv.url, timeout=timeout, limits=limits) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        [dep] = (await client.get("/admin/deployments", headers=admin)).json()["data"]
        victim = dep["replica_status"][0]["pid"]
        calls = [
            asyncio.create_task(_one(client, key, i, args.max_tokens)) for i in range(args.requests)
        ]
        done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
        waiting = args.requests - len(done) - args.parallel  # the rest are being served
        killed = None
        if not args.no_kill:
            os.kill(victim, signal.SIGKILL)
            killed = time.time()
        answers = await asyncio.gather(*calls)
    return {"answers": answers, "killed": killed, "waiting_at_kill": max(0, waiting)}


def _figures(srv: ServerProcess, run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    answers: list[Answer] = run["answers"]
    statuses = Counter(a.status for a in answers)
    out: dict[str, Any] = {
        "requests_sent": len(answers),
        "completed": statuses.get(200, 0),
        "refused_429": statuses.get(429, 0),
        "other_statuses": {str(s): n for s, n in sorted(statuses.items()) if s not in (200, 429)},
        "waiting_at_kill": run["waiting_at_kill"],
    }
    ok = [a.request_id for a in answers if a.status == 200 and a.request_id]
    srv.tenant_usage("drill", requests=len(ok), timeout=30)  # the ledger writer batches
    dispatched = _dispatched(srv.data_dir, ok)
    killed = run["killed"]
    if killed is None:
        start = min(dispatched.values(), default=0.0)
        out["max_wait_s"] = round(max(a.ended for a in answers) - start, 2)
        return out
    ready = [t for t in _ready_times(srv.data_dir / "logs" / "tokenmill.log") if t > killed]
    if not ready:
        out["replacement_ready_after_kill_s"] = None
        return out
    ready_at = ready[0]
    after = [t for t in dispatched.values() if t > killed]
    out |= {
        "replacement_ready_after_kill_s": round(ready_at - killed, 2),
        "first_dispatch_after_ready_s": round(min(after) - ready_at, 3) if after else None,
        "dispatched_after_kill": len(after),
        "max_wait_after_ready_s": round(max(a.ended for a in answers) - ready_at, 2),
        "queue_wait_s": args.queue_wait,
    }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=36)
    ap.add_argument("--parallel", type=int, default=4, help="the engine's slots")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--queue-wait", type=float, default=30.0, help="TOKENMILL_QUEUE_WAIT_S")
    ap.add_argument("--no-kill", action="store_true", help="the same load, no kill: a baseline")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="tm-engine-kill-"))
    srv = ServerProcess(data_dir, extra_env={"TOKENMILL_QUEUE_WAIT_S": str(args.queue_wait)})
    try:
        srv.start(default_model=False)
        spec = {"name": DEPLOYMENT, "engine": "llamacpp", "model_path": str(default_model_path()),
                "replicas": 1,
                "options": {"parallel": args.parallel, "threads": args.threads}}  # fmt: skip
        srv.admin("POST", "/admin/deployments", json=spec)
        srv.wait_ready(READY_WITHIN_S)
        key = srv.new_tenant_key("drill")
        run = asyncio.run(asyncio.wait_for(_load(srv, key, args), args.queue_wait + 240))
        figures = _figures(srv, run, args)
    finally:
        srv.stop()
    return figures


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=1)
    print()
