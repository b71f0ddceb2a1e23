"""The console's pages on a 1M-record ledger: each page's API calls, as the page makes them,
timed over HTTP against a real server, against the 300 ms target per page (issue 16).

    python benchmarks/console_pages.py [--records 1000000] [--days 90] [--runs 5]
                                       [--out benchmarks/results/console_pages-1m.json]
                                       [--skip-router] [--keep NEW_DATA_DIR]

The ledger is `usage_queries.make_records`'s (the same as benchmarks/usage_queries.py): records
spread evenly over `--days` days ending now, 50 tenants, 200 keys (each a tenant's), 5 models,
10% of them by 20 agents. They go in with the ledger's own `insert_records` in batches of
5,000 (the rollup kept as they go in), each batch rated (`rate_records`, one "*" price in USD)
as the ledger writer does. Then the rollups are dropped and rebuilt by migration 0015's
backfill (downgrade to 0014, upgrade), timed, and checked row for row against the live ones.

Then, as a page sees it (console_http.py): the records' 50 tenants are created with 4 member
keys each, a platform admin key and tenant-07's tenant admin key; a real server is started on
the data directory (`tokenmill up`, as a subprocess: `tokenmill.testing.ServerProcess`), each
key signs in to the console, and each page's API calls are issued over HTTP to 127.0.0.1 as
the page issues them (together where it awaits them together). One warm-up load, then
`--runs` loads per page: the page's wall time and each call's, median and max in ms.

"queries" in the output (skip them with --skip-router): single calls through
`admin_routes.router` in a FastAPI app by httpx's ASGI transport, windows starting on a whole
hour, with a platform admin's principal and a tenant admin's; one warm-up, `--runs` more.
"""

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import Engine

from console_http import run_pages, seed_accounts
from tokenmill.api import admin_routes
from tokenmill.api.errors import install_error_handlers
from tokenmill.api.state import services
from tokenmill.bench.report import run_info
from tokenmill.billing.prices import EARLIEST, PriceBook
from tokenmill.billing.rating import rate_records
from tokenmill.metering.ledger import insert_records
from tokenmill.security.keys import Principal
from tokenmill.security.roles import Role
from tokenmill.store import db as store_db
from tokenmill.store.db import make_engine, migrate, sqlite_url
from usage_queries import DAY_S, make_records

BATCH = 5_000
ROLLUPS = ("usage_rollup", "revenue_rollup")
TENANT = "tenant-07"
PAGE = "/admin/usage"


def load(db: Engine, records: int, days: int) -> dict[str, float]:
    book = PriceBook(db).load()
    book.add("*", {"input": "0.15", "cached_input": "0.075", "output": "0.6"}, "USD",
             effective_from=EARLIEST, source="benchmark", book="benchmark")  # fmt: skip
    made = make_records(records, days)
    inserting = rating = 0.0
    for i in range(0, len(made), BATCH):
        batch = made[i : i + BATCH]
        began = time.perf_counter()
        insert_records(db, batch)
        inserted = time.perf_counter()
        rate_records(db, book, batch)
        inserting += inserted - began
        rating += time.perf_counter() - inserted
    return {"insert_s": round(inserting, 1), "rate_s": round(rating, 1)}


def backfill(db: Engine) -> dict[str, Any]:
    """Migration 0015 run on the loaded ledger; its rows compared with the live rollups'."""
    with db.begin() as conn:
        for table in ROLLUPS:
            conn.exec_driver_sql(f"CREATE TABLE live_{table} AS SELECT * FROM {table}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_db.__file__).parent / "migrations"))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0014")
    began = time.perf_counter()
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    took = time.perf_counter() - began
    rows, differ = {}, {}
    with db.begin() as conn:
        for table in ROLLUPS:
            rows[table] = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            differ[table] = conn.exec_driver_sql(
                f"SELECT count(*) FROM (SELECT * FROM {table} EXCEPT SELECT * FROM live_{table}"
                f" UNION ALL SELECT * FROM live_{table} EXCEPT SELECT * FROM {table})"
            ).scalar()
            conn.exec_driver_sql(f"DROP TABLE live_{table}")
    return {"backfill_s": round(took, 1), "rows": rows, "rows_differing_from_live": differ}


def app(db: Engine, principal: Principal) -> FastAPI:
    out = FastAPI()
    install_error_handlers(out)
    out.include_router(admin_routes.router)
    out.dependency_overrides[admin_routes.admin] = lambda: principal
    out.dependency_overrides[services] = lambda: SimpleNamespace(db=db)
    return out


def calls(now: float) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, who, path, params): the calls the console's usage pages make."""
    hour = math.floor(now / 3600) * 3600
    day = hour - hour % DAY_S
    d30 = hour - 30 * DAY_S
    out = []
    for g in ("tenant", "model", "key", "day", "week", "month", "tenant,model,day"):
        out.append((f"usage by {g}, 30 days", "admin", PAGE, {"group_by": g, "since": d30}))
        out.append((f"usage by {g}, all time", "admin", PAGE, {"group_by": g}))
    out += [
        ("tenant admin: usage by key, 30 days", "tenant", "/admin/usage",
         {"group_by": "key", "since": d30}),
        ("tenant admin: usage by model,day, all time", "tenant", "/admin/usage",
         {"group_by": "model,day"}),
        ("series hourly, 7 days", "admin", "/admin/usage/series",
         {"step": "hour", "since": hour - 7 * DAY_S}),
        ("series hourly, 7 days, one tenant", "admin", "/admin/usage/series",
         {"step": "hour", "since": hour - 7 * DAY_S, "tenant": TENANT}),
        ("series daily, 90 days", "admin", "/admin/usage/series",
         {"step": "day", "since": day - 89 * DAY_S}),
        ("series daily, 90 days, one tenant", "admin", "/admin/usage/series",
         {"step": "day", "since": day - 89 * DAY_S, "tenant": TENANT}),
        ("tenant admin: series hourly, 7 days", "tenant", "/admin/usage/series",
         {"step": "hour", "since": hour - 7 * DAY_S}),
        # For comparison: a window that is not hour-aligned is answered from the ledger.
        ("usage by tenant, 30 days, not hour-aligned (ledger path)", "admin", "/admin/usage",
         {"group_by": "tenant", "since": d30 + 1}),
    ]  # fmt: skip
    return out


async def time_calls(db: Engine, runs: int) -> dict[str, Any]:
    who = {
        "admin": Principal(key_id="bench", tenant="system", role=Role.PLATFORM_ADMIN),
        "tenant": Principal(key_id="bench", tenant=TENANT, role=Role.TENANT_ADMIN),
    }
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app(db, p)), base_url="http://b")
        for name, p in who.items()
    }
    results = {}
    for name, caller, path, params in calls(time.time()):
        client = clients[caller]
        first = await client.get(path, params=params)  # warm-up: the page cache, as on a server
        assert first.status_code == 200, first.text
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            (await client.get(path, params=params)).raise_for_status()
            times.append((time.perf_counter() - began) * 1e3)
        rows = len(first.json()["data"])
        results[name] = {"median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "rows": rows}  # fmt: skip
        print(f"{name:60s} {results[name]}", flush=True)
    for client in clients.values():
        await client.aclose()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--skip-router", action="store_true", help="only the pages, over HTTP")
    ap.add_argument("--keep", type=Path, default=None, help="build the data directory here (new)")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenmill-bench-"))
        else:
            args.keep.mkdir(parents=True)  # a new folder: never a ledger already there
            folder = str(args.keep)
        db = make_engine(sqlite_url(Path(folder)))
        migrate(db)
        loaded = load(db, args.records, args.days)
        print(f"loaded: {loaded}", flush=True)
        rebuilt = backfill(db)
        print(f"backfill: {rebuilt}", flush=True)
        queries = {} if args.skip_router else asyncio.run(time_calls(db, args.runs))
        seed_accounts(db, tenants=50, keys_per_tenant=4, tenant=TENANT)
        db.dispose()
        served = run_pages(Path(folder), args.runs)
    report = {**run_info(), "records": args.records, "days": args.days, "runs": args.runs,
              **loaded, **rebuilt, **served, "queries": queries}  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
