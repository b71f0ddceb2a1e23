"""The console's pages as a browser loads them, over HTTP against a real server (issue 16).

Each page below issues the API calls its module under src/tokenmill/console/static/pages/ makes
on first render (its default tab, grouping and period), with the parameters it really sends:
ranges as range.js makes them (since = now - the range, moved back to the start of its chart
bucket; until = now, to the second; step hour up to 8 days, day beyond), the Overview's
"today" series from 00:00 UTC, and calls the page awaits together (Promise.all) issued
concurrently. A page's time is the wall
time from its first request to its last response; each call's own time is kept too.
"""

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from tokenmill import testing
from tokenmill.security.accounts import SYSTEM_TENANT, Accounts, KeySpec
from tokenmill.security.keys import KeyRing
from tokenmill.security.roles import Role

TENANT_ADMIN_KEY = "tm-bench-tenant-admin-0123456789abcdefgh"
RANGES = {"24h": 86_400, "30d": 30 * 86_400}  # range.js PRESETS
DAY = 86_400
Get = Callable[[str, str, dict[str, Any] | None], Awaitable[Any]]


def seed_accounts(db: Engine, tenants: int, keys_per_tenant: int, tenant: str) -> None:
    """What the Access page lists: the records' tenants, a few member keys each, the platform
    admin key the server is started with, and a tenant admin's key for `tenant`."""
    accounts = Accounts(db, KeyRing())
    accounts.ensure_tenant(SYSTEM_TENANT)
    admin = KeySpec(role=Role.PLATFORM_ADMIN)
    accounts.create_key(SYSTEM_TENANT, "bench-admin", admin, secret=testing.ADMIN_KEY)
    for i in range(tenants):
        accounts.ensure_tenant(f"tenant-{i:02d}")
        for k in range(keys_per_tenant):
            accounts.create_key(f"tenant-{i:02d}", f"app-{k}", KeySpec(role=Role.MEMBER))
    accounts.create_key(tenant, "bench-tenant-admin", KeySpec(role=Role.TENANT_ADMIN),
                        secret=TENANT_ADMIN_KEY)  # fmt: skip


def window(name: str) -> dict[str, Any]:
    """range.js currentRange for a preset: the query values the pages send."""
    seconds = RANGES[name]
    end = math.floor(time.time())
    step = "hour" if seconds <= 8 * DAY else "day"
    size = 3600 if step == "hour" else DAY  # the window starts on a bucket's start
    return {"since": (end - seconds) // size * size, "until": end, "step": step}


def series(get: Get, r: dict[str, Any], label: str = "usage/series") -> Awaitable[Any]:
    return get(label, "/admin/usage/series", r)  # series.js fetchSeries (no filters)


async def overview(get: Get, rng: str, platform: bool) -> None:
    r = window(rng)
    now = time.time()
    today = {"since": math.floor(now / DAY) * DAY, "until": math.ceil(now), "step": "hour"}
    span = {"since": r["since"], "until": r["until"]}
    by = "tenant" if platform else "key"
    calls = [
        series(get, r),
        get(f"usage {by},model", "/admin/usage", {"group_by": f"{by},model", **span}),
        series(get, today, "usage/series today"),
    ]
    if platform:  # kpis:read, deployments:read
        calls.append(get("economics", "/admin/economics", span))
        calls.append(get("deployments", "/admin/deployments", None))
    else:  # keys:read, not platform
        calls.append(get("keys", "/admin/keys", None))
    await asyncio.gather(*calls)


async def usage(get: Get, rng: str, platform: bool) -> None:
    r = window(rng)
    span = {"since": r["since"], "until": r["until"]}
    asked = "tenant,model,day" if platform else "key,model,day"  # default group + period "day"
    options = "tenant,model,key,agent" if platform else "model,key,agent"
    await asyncio.gather(
        get(f"usage {asked}", "/admin/usage", {"group_by": asked, **span}),
        get(f"usage {options}", "/admin/usage", {"group_by": options, **span}),
        series(get, r),
        get("keys", "/admin/keys", None),
        get("agents", "/admin/agents", None),
    )


async def economics(get: Get, rng: str, platform: bool) -> None:
    r = window(rng)
    await get("economics", "/admin/economics", {"since": r["since"], "until": r["until"]})


async def models(get: Get, rng: str, platform: bool) -> None:
    await asyncio.gather(get("deployments", "/admin/deployments", None),
                         get("replicas", "/admin/replicas", None))  # fmt: skip


async def fleet(get: Get, rng: str, platform: bool) -> None:
    await get("fleet", "/admin/fleet", None)


async def tenants(get: Get, rng: str, platform: bool) -> None:  # "Access", its tenants tab
    names = ("tenants", "users", "keys", "agents")
    await asyncio.gather(*(get(n, f"/admin/{n}", None) for n in names))


async def billing(get: Get, rng: str, platform: bool) -> None:  # its invoices tab
    names = ("invoices", "prices", "budgets", "discounts", "tenants")
    await asyncio.gather(*(get(n, f"/admin/{n}", None) for n in names))


async def audit(get: Get, rng: str, platform: bool) -> None:
    verify, _ = await asyncio.gather(get("audit/verify", "/admin/audit/verify", None),
                                     get("doctor", "/admin/doctor", None))  # fmt: skip
    after = max(0, (verify["checked"] or 0) - 50)  # then the newest page, after the verify
    for _ in range(20):
        out = await get("audit", "/admin/audit", {"after": after, "limit": 1000})
        if len(out["data"]) < 1000:
            return
        after = out["data"][-1]["seq"]


Page = Callable[[Get, str, bool], Awaitable[None]]
# (page, who, range or None): as a platform admin every page (24h and 30d where it has a
# range); as tenant-07's tenant admin the Overview and Usage.
PLAN: list[tuple[str, Page, str, str | None]] = [
    *[(n, p, "admin", rng) for n, p in (("overview", overview), ("usage", usage),
                                         ("economics", economics)) for rng in RANGES],
    *[(n, p, "admin", None) for n, p in (("models", models), ("fleet", fleet),
                                         ("tenants", tenants), ("billing", billing),
                                         ("audit", audit))],
    *[(n, p, "tenant-admin", rng) for n, p in (("overview", overview), ("usage", usage))
      for rng in RANGES],
]  # fmt: skip


async def signed_in(url: str, key: str) -> httpx.AsyncClient:
    """A client holding a console session, signed in with a key as on the login page."""
    client = httpx.AsyncClient(base_url=url, timeout=600)
    resp = await client.post("/console/api/login", json={"key": key})
    resp.raise_for_status()
    cookie = resp.cookies.get("tm_session")  # Secure: set it by hand for http://127.0.0.1
    assert cookie, resp.headers
    client.headers["Cookie"] = f"tm_session={cookie}"
    return client


async def load_page(
    client: httpx.AsyncClient, page: Page, rng: str | None, platform: bool
) -> tuple[float, list[tuple[str, float, int]]]:
    """One page load: (wall ms, [(call label, ms, bytes)])."""
    calls: list[tuple[str, float, int]] = []

    async def get(label: str, path: str, params: dict[str, Any] | None) -> Any:
        began = time.perf_counter()
        resp = await client.get(path, params=params)
        took = (time.perf_counter() - began) * 1e3
        assert resp.status_code == 200, (path, params, resp.status_code, resp.text[:300])
        calls.append((label, took, len(resp.content)))
        return resp.json()

    began = time.perf_counter()
    await page(get, rng or "24h", platform)
    return (time.perf_counter() - began) * 1e3, calls


def stats(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "max_ms": round(max(values), 1)}


async def time_pages(url: str, runs: int) -> dict[str, Any]:
    clients = {"admin": await signed_in(url, testing.ADMIN_KEY),
               "tenant-admin": await signed_in(url, TENANT_ADMIN_KEY)}  # fmt: skip
    out: dict[str, Any] = {}
    for name, page, who, rng in PLAN:
        walls: list[float] = []
        per_call: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for i in range(runs + 1):  # the first is the warm-up
            wall, calls = await load_page(clients[who], page, rng, who == "admin")
            if i == 0:
                continue
            walls.append(wall)
            for label, took, size in calls:
                per_call.setdefault(label, []).append(took)
                sizes[label] = size
        key = f"{name} ({who}{', ' + rng if rng else ''})"
        slowest = max(per_call, key=lambda c: statistics.median(per_call[c]))
        calls = {c: {**stats(t), "bytes": sizes[c]} for c, t in per_call.items()}
        out[key] = {**stats(walls), "slowest_call": slowest, "calls": calls}
        print(f"{key:40s} page {stats(walls)}  slowest: {slowest} "
              f"{stats(per_call[slowest])}", flush=True)  # fmt: skip
    for client in clients.values():
        await client.aclose()
    return out


def run_pages(data_dir: Path, runs: int) -> dict[str, Any]:
    """Start a real server (`tokenmill up`) on the data directory and time every page."""
    env = {"TOKENMILL_AUTH_FAILURES_PER_MINUTE": "1000000"}
    server = testing.ServerProcess(data_dir, extra_env=env)
    began = time.perf_counter()
    server.start(timeout=900, default_model=False)
    started = round(time.perf_counter() - began, 1)
    print(f"server ready in {started} s", flush=True)
    try:
        pages = asyncio.run(time_pages(server.url, runs))
        audit_records = len(server.audit_records())
    finally:
        server.stop()
    return {"server_start_s": started, "audit_records_after": audit_records, "pages": pages}
