"""Drill: several choices in one request (finding 1 of issue 14).

At 9c1dbe9, `POST /v1/completions` with a 64-prompt list and `max_tokens` 100 returned 64
choices but metered one (107 tokens for about 6,400 generated), passed budgets 2.8x to 25x,
held another tenant's 3-token request for 30 s, and, streamed, recorded nothing.

Against a real `tokenmill up` (real llama.cpp, SmolLM2) on 127.0.0.1 this drill measures:
- the ledger against the engine's own counters (`tokenmill reconcile`) after prompt lists and
  `n`, streamed and not;
- a token budget against requests that each ask for many choices;
- another tenant's short request while a 64-prompt list runs, against the same request alone.

    .venv/bin/python benchmarks/drills/prompt_list.py

Prints JSON; exits 1 on any reconcile drift or a budget passed.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


def post(srv: ServerProcess, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(srv.url + path, json=body, headers=headers, timeout=600)


def short_request_s(srv: ServerProcess, key: str) -> float:
    body = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}
    started = time.monotonic()
    resp = post(srv, key, "/v1/chat/completions", body)
    resp.raise_for_status()
    return time.monotonic() - started


def prompts(count: int) -> list[str]:
    return [f"Write a short story about the number {i}." for i in range(count)]


def fairness(
    srv: ServerProcess, lister: str, other: str, args: argparse.Namespace
) -> dict[str, Any]:
    alone = [short_request_s(srv, other) for _ in range(args.probes)]
    body = {"model": MODEL, "prompt": prompts(args.prompts), "max_tokens": args.max_tokens}
    big: dict[str, Any] = {}

    def run_big() -> None:
        started = time.monotonic()
        resp = post(srv, lister, "/v1/completions", body)
        big["status"], big["s"] = resp.status_code, time.monotonic() - started
        if resp.status_code == 200:
            big["choices"] = len(resp.json()["choices"])
            big["completion_tokens"] = resp.json()["usage"]["completion_tokens"]

    thread = threading.Thread(target=run_big)
    thread.start()
    time.sleep(1.0)  # the list's choices fill every slot
    during = []
    while thread.is_alive() and len(during) < args.probes:
        during.append(short_request_s(srv, other))
        time.sleep(0.5)
    thread.join()
    return {
        "prompt_list": big,
        "other_tenant_alone_s": {
            "median": round(statistics.median(alone), 2),
            "max": round(max(alone), 2),
        },
        "other_tenant_during_s": {
            "median": round(statistics.median(during), 2) if during else None,
            "max": round(max(during), 2) if during else None,
            "probes": len(during),
        },
    }


def budget(srv: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    srv.admin("POST", "/admin/tenants", json={"name": "budgeted"})
    key = srv.new_key("budgeted", budget_tokens=args.budget)
    body = {"model": MODEL, "prompt": prompts(8), "max_tokens": 60}
    statuses = [
        post(srv, key, "/v1/completions", body).status_code for _ in range(args.budget_tries)
    ]
    served = statuses.count(200)
    rows = srv.tenant_usage("budgeted", 8 * served)
    spent = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    return {"budget_tokens": args.budget, "requests": len(statuses), "served": served,
            "refused": statuses.count(429), "spent_tokens": spent,
            "spent_over_budget": round(spent / args.budget, 3)}  # fmt: skip


def choices_metered(srv: ServerProcess, key: str) -> dict[str, Any]:
    asked = [
        ("/v1/completions", {"prompt": prompts(8), "max_tokens": 12}),
        ("/v1/completions", {"prompt": prompts(4), "n": 2, "max_tokens": 12, "stream": True}),
        ("/v1/chat/completions", {"n": 5, "max_tokens": 12, "stream": True,
                                  "messages": [{"role": "user", "content": "A colour?"}]}),
        ("/v1/chat/completions", {"n": 3, "max_tokens": 12,
                                  "messages": [{"role": "user", "content": "A fruit?"}]}),
    ]  # fmt: skip
    for path, extra in asked:
        resp = post(srv, key, path, {"model": MODEL, **extra})
        resp.raise_for_status()
    return {"requests": len(asked), "choices": 8 + 8 + 5 + 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--budget", type=int, default=2500)
    parser.add_argument("--budget-tries", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-prompt-list-") as tmp:
        srv = ServerProcess(Path(tmp) / "data").start()
        try:
            lister = srv.new_tenant_key("lister")
            other = srv.new_tenant_key("other")
            result: dict[str, Any] = {"metered": choices_metered(srv, lister)}
            result["budget"] = budget(srv, args)
            result["fairness"] = fairness(srv, lister, other, args)
            time.sleep(1.0)  # the ledger writer's last batch
            done = subprocess.run(
                [sys.executable, "-m", "tokenmill", "reconcile", "--json"],
                env=srv.env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            (replica,) = json.loads(done.stdout)["replicas"]
            result["reconcile"] = {"status": replica["status"], "drift": replica["drift"],
                                   "engine": replica["engine"]}  # fmt: skip
        finally:
            srv.stop()
    print(json.dumps(result, indent=2))
    drift = any(replica["drift"].values())
    over = result["budget"]["spent_tokens"] > args.budget
    return 1 if drift or over else 0


if __name__ == "__main__":
    sys.exit(main())
