"""Drill: cheap abuse from one address, against a real `tokenmill up` on 127.0.0.1.

    python benchmarks/drills/unauth_flood.py [--requests 10000] [--keyless-only]
                                             [--idle 200] [--slow 32] [--observe 30]

1. Floods the server with `requests` requests that carry no key (a quarter a malformed one,
   unless --keyless-only), on the OpenAI surface and the admin surface, and counts the audit
   log's records before, right after and after shutdown (when the last window's summaries are
   written). Every refusal must be accounted for: records written one by one plus the counts
   their summaries carry.
2. While the address is locked out, the local admin's key is tried (it should still get in).
3. Opens `idle` connections that send nothing and `slow` ones sending their headers a byte a
   second, and measures when the server closes each (observed for at most `--observe` s).

Only 127.0.0.1 traffic; every loop is bounded; a throwaway data directory. Runs against any
version (it reads the audit table directly), so it also measures the one before the fix.
"""

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from tokenmill.testing import ADMIN_KEY, ServerProcess

SUMMARY_ACTION = "auth.refusals"
ROUTES = (
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", None),
    ("GET", "/admin/tenants", None),
    ("GET", "/v1/models", "Bearer nope"),  # a malformed key
)


def _audit(db_path: Path) -> tuple[int, int, int]:
    """(records by unauthenticated callers, of them summaries, refusals the summaries count)"""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT action, json_extract(detail, '$.count') FROM audit_log "
            "WHERE actor = 'unauthenticated'"
        ).fetchall()
    summaries = [count or 0 for action, count in rows if action == SUMMARY_ACTION]
    return len(rows), len(summaries), sum(summaries)


async def _flood(
    url: str, n: int, concurrency: int, keyless_only: bool
) -> tuple[Counter[int], float]:
    statuses: Counter[int] = Counter()
    todo = iter(range(n))
    routes = [r for r in ROUTES if r[2] is None] if keyless_only else ROUTES

    async def worker(client: httpx.AsyncClient) -> None:
        for i in todo:
            method, path, auth = routes[i % len(routes)]
            headers = {"Authorization": auth} if auth else {}
            body = {"model": "m", "messages": []} if method == "POST" else None
            resp = await client.request(method, path, headers=headers, json=body)
            statuses[resp.status_code] += 1

    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses, time.monotonic() - started


async def _held(port: int, slow: bool, observe_s: float) -> tuple[float | None, bytes]:
    """How long the server kept one connection open (None: still open after `observe_s`) and
    the first bytes it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    first = b""
    try:
        if slow:
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while time.monotonic() - started < observe_s:
            try:
                chunk = await asyncio.wait_for(reader.read(256), timeout=1.0)
            except TimeoutError:
                if slow:
                    writer.write(b"X")  # one more header byte a second
                    await writer.drain()
                continue
            if not chunk:
                return time.monotonic() - started, first
            first = first or chunk[:40]
        return None, first
    except ConnectionError:
        return time.monotonic() - started, first
    finally:
        writer.close()


def _describe(what: str, results: list[tuple[float | None, bytes]], observe_s: float) -> None:
    closed = sorted(t for t, _ in results if t is not None)
    line = f"{what}: {len(results)} opened, {len(closed)} closed by the server"
    line += f" within {observe_s:.0f} s"
    if closed:
        line += (
            f" (median {statistics.median(closed):.1f} s, "
            f"min {closed[0]:.1f} s, max {closed[-1]:.1f} s)"
        )
    answers = Counter(first.split(b"\r\n")[0].decode(errors="replace") for _, first in results)
    print(line)
    print(f"  first line the server sent: {dict(answers)}")


async def _connections(port: int, idle: int, slow: int, observe_s: float) -> None:
    tasks = [_held(port, False, observe_s) for _ in range(idle)]
    tasks += [_held(port, True, observe_s) for _ in range(slow)]
    results = await asyncio.gather(*tasks)
    _describe("idle connections (send nothing)", list(results[:idle]), observe_s)
    _describe("slow-header connections (a byte a second)", list(results[idle:]), observe_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keyless-only", action="store_true", help="no malformed keys")
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--slow", type=int, default=32)
    parser.add_argument("--observe", type=float, default=30.0, help="seconds to watch them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-unauth-") as tmp:
        srv = ServerProcess(Path(tmp))
        srv.start(timeout=60, default_model=False)
        db_path = srv.data_dir / "tokenmill.db"
        try:
            before = _audit(db_path)
            statuses, took = asyncio.run(
                _flood(srv.url, args.requests, args.concurrency, args.keyless_only)
            )
            during = _audit(db_path)
            admin = httpx.get(
                srv.url + "/admin/tenants",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=10,
            ).status_code
            print(
                f"flood: {args.requests} requests without a valid key in {took:.1f} s "
                f"({args.requests / took:.0f}/s), answers {dict(sorted(statuses.items()))}"
            )
            print(f"local admin key during the lockout: HTTP {admin}")
            asyncio.run(_connections(srv.port, args.idle, args.slow, args.observe))
        finally:
            srv.stop()
        after = _audit(db_path)
    added, summaries, counted = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
    print(
        f"audit records by unauthenticated callers: {before[0]} before, {during[0]} right "
        f"after the flood, {after[0]} after shutdown: {added} added for "
        f"{args.requests} requests"
    )
    print(
        f"  {added - summaries} one by one + {summaries} summaries counting {counted} = "
        f"{added - summaries + counted} refusals accounted for"
    )


if __name__ == "__main__":
    main()
