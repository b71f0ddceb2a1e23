"""Usage queries on a large ledger: how long `usage_totals` (what `GET /admin/usage` and a
console's usage pages run) takes with 1M usage records, per grouping and window.

    python benchmarks/usage_queries.py [--records 1000000] [--days 90] [--runs 5]

The records are made here, not served: `insert_records` (the ledger's own insert) in batches
of 5,000 into a fresh SQLite database migrated with `store.db.migrate`, spread evenly over
`--days` days ending now, 50 tenants, 200 keys (each a tenant's), 5 models, 10% of them by
20 agents; token counts drawn from a fixed seed (prompt 50-4,000, completion 1-1,000). Each
query runs `--runs` times after one warm-up; the median and the slowest are printed in ms,
with the rows it returned. The console's target (issue 16): a page's server time under 300 ms.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenmill.core.ids import new_request_id
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records, usage_totals
from tokenmill.store.db import make_engine, migrate, sqlite_url

DAY_S = 86_400.0
BATCH = 5_000


def make_records(n: int, days: int, seed: int = 7) -> list[UsageRecord]:
    rng = random.Random(seed)
    end = time.time()
    start = end - days * DAY_S
    tenants = [f"tenant-{i:02d}" for i in range(50)]
    models = ["chat-small", "chat-large", "coder", "embed", "vision"]
    out = []
    for i in range(n):
        tenant = tenants[i % 50]
        agent = f"agent-{i % 20}" if i % 10 == 0 else None
        out.append(UsageRecord(
            request_id=new_request_id(), created_at=start + (end - start) * i / n,
            tenant=tenant, key_id=f"key-{i % 200:03d}", model=models[i % 5],
            deployment=models[i % 5], replica=f"{models[i % 5]}-{i % 3}", endpoint="chat",
            stream=i % 2 == 0, prompt_tokens=rng.randint(50, 4000),
            cached_tokens=rng.randint(0, 50), completion_tokens=rng.randint(1, 1000),
            ttft_ms=rng.uniform(20, 900), duration_ms=rng.uniform(100, 20_000), status=200,
            outcome="ok", finish_reason="stop", usage_source="engine", agent=agent,
        ))  # fmt: skip
    return out


def timed(query: Callable[[], list[dict[str, Any]]], runs: int) -> dict[str, Any]:
    rows = query()  # warm-up: the page cache, as on a server that has been running
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        query()
        times.append((time.perf_counter() - began) * 1e3)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "rows": len(rows)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tokenmill-usage-bench-") as folder:
        db = make_engine(sqlite_url(Path(folder)))
        migrate(db)
        began = time.perf_counter()
        records = make_records(args.records, args.days)
        for i in range(0, len(records), BATCH):
            insert_records(db, records[i : i + BATCH])
        loaded_s = time.perf_counter() - began
        now = time.time()
        day, week, month = now - DAY_S, now - 7 * DAY_S, now - 30 * DAY_S
        queries: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "total, all time": lambda: usage_totals(db, []),
            "tenant x model x day, all time": lambda: usage_totals(db, ["tenant", "model", "day"]),
            "day, last 30 days": lambda: usage_totals(db, ["day"], month),
            "tenant x day, last 7 days": lambda: usage_totals(db, ["tenant", "day"], week),
            "key, last 24 h": lambda: usage_totals(db, ["key"], day),
            "model x week, all time": lambda: usage_totals(db, ["model", "week"]),
            "tenant x month, all time": lambda: usage_totals(db, ["tenant", "month"]),
            "one tenant x day, last 30 days": lambda: usage_totals(
                db, ["day"], month, None, "tenant-07"
            ),
            "agent x day, last 30 days": lambda: usage_totals(db, ["agent", "day"], month),
        }
        results = {name: timed(q, args.runs) for name, q in queries.items()}
        print(json.dumps({"records": args.records, "days": args.days, "runs": args.runs,
                          "load_s": round(loaded_s, 1), "queries": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
