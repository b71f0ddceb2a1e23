"""Ledger ingest: usage records per second into SQLite with durability on.

    python benchmarks/ledger_ingest.py [--records 200000] [--batches 500,1000,5000] [--runs 3]
                   [--long-records 1000000] [--e2e-records 100000] [--producers 64,512]

Every run uses a fresh database in a temporary directory (set TMPDIR to one on the disk the
data directory lives on), migrated with `store.db.migrate`. Records are built before the clock
starts, with the gateway's own request ids (`core.ids.new_request_id`: time-ordered), 50
tenants, 200 keys.

1. Raw ledger: `insert_records` in batches of each size with `PRAGMA synchronous=FULL` on top
   of the production pragmas (WAL): every commit fsyncs the WAL before it returns, so each
   batch is durable when `insert_records` returns. Rate = records / wall time for the whole
   run; the median of `--runs`. Batch latency = one `insert_records` call (rows built, insert,
   commit with its fsync), p50/p99 over every batch of every run. For comparison, the project's
   own mode: synchronous=NORMAL, `make_durable` (a WAL checkpoint) every 2 s and at the end.
   Then one long FULL run (`--long-records`, batches of 1000), its rate per tenth of the run.
2. Duplicates: the same records inserted again in batches of 1000: must add 0 rows.
3. End to end: `Metering` with `journal_sync="fsync"` and the production engine
   (`make_engine`), N producers on one asyncio loop each awaiting `metering.record(r)` in turn.
   Clocked until a poll of `count(*)` sees every record in the ledger, then until `close()` has
   made the ledger durable and emptied the journal.
"""

import argparse
import asyncio
import itertools
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

import tokenmill.metering.ledger as ledger
from tokenmill.bench.report import percentiles, run_info
from tokenmill.core.ids import new_request_id
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.metering.service import Metering
from tokenmill.store.db import make_durable, make_engine, migrate, sqlite_url

DURABLE_EVERY_S = 2.0  # LedgerWriter's default checkpoint interval


def _records(n: int) -> list[UsageRecord]:
    now = time.time()
    return [
        UsageRecord(
            request_id=new_request_id(), created_at=now - (n - i) * 0.01, tenant=f"t{i % 50}",
            key_id=f"key_{i % 200}", model=("smol", "qwen-7b", "llama-8b")[i % 3],
            deployment="d", replica=f"d-{i % 4}", endpoint="chat", stream=i % 2 == 0,
            prompt_tokens=100 + i % 900, cached_tokens=i % 64, completion_tokens=20 + i % 400,
            ttft_ms=35.5, duration_ms=812.25, status=200, outcome="ok", finish_reason="stop",
            usage_source="engine", agent=f"agt_{i % 10}" if i % 3 == 0 else None,
        )
        for i in range(n)
    ]  # fmt: skip


@contextmanager
def _database(synchronous: str | None) -> Iterator[Engine]:
    """A fresh, migrated SQLite database; `synchronous` overrides the production pragma."""
    with tempfile.TemporaryDirectory(prefix="tm-ledger-", dir=os.environ.get("TMPDIR")) as d:
        engine = make_engine(sqlite_url(Path(d)))
        if synchronous is not None:

            def _pragma(conn: DBAPIConnection, _r: ConnectionPoolEntry) -> None:
                cur = conn.cursor()
                cur.execute(f"PRAGMA synchronous={synchronous}")  # after make_engine's pragmas
                cur.close()

            event.listen(engine, "connect", _pragma)
        migrate(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def _pragmas(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "synchronous", "wal_autocheckpoint", "cache_size")
        }


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM usage_records")).scalar_one())


def _load() -> float:
    return os.getloadavg()[0]


def _ingest(
    engine: Engine, records: list[UsageRecord], batch: int, durable: Callable[[], None] | None
) -> dict[str, Any]:
    """Insert in batches; `durable` (if given) is called every DURABLE_EVERY_S and at the end."""
    latencies = []
    done = [(0, 0.0)]  # (records inserted, seconds since start) after each batch
    cpu0, t0 = time.process_time(), time.perf_counter()
    last_durable = t0
    added = 0
    for i in range(0, len(records), batch):
        b0 = time.perf_counter()
        added += insert_records(engine, records[i : i + batch])
        latencies.append(time.perf_counter() - b0)
        if durable is not None and b0 - last_durable >= DURABLE_EVERY_S:
            durable()
            last_durable = time.perf_counter()
        done.append((i + batch, time.perf_counter() - t0))
    if durable is not None:
        durable()
    wall = time.perf_counter() - t0
    assert added == len(records), (added, len(records))
    return {
        "records": added,
        "wall_s": wall,
        "records_per_s": added / wall,
        "tenths_records_per_s": _tenths(done, len(records)),
        "cpu_s": time.process_time() - cpu0,
        "latencies": latencies,
    }


def _tenths(done: list[tuple[int, float]], total: int) -> list[float]:
    """Records/s over each tenth of a run (batch boundaries nearest the tenths): sustained?"""
    marks = list(
        dict.fromkeys(min(done, key=lambda d: abs(d[0] - total * k / 10)) for k in range(11))
    )
    return [(n1 - n0) / (t1 - t0) for (n0, t0), (n1, t1) in itertools.pairwise(marks)]


def _raw(records: list[UsageRecord], batch: int, runs: int, mode: str) -> dict[str, Any]:
    results = []
    pragmas: dict[str, Any] = {}
    load = [_load()]
    for _ in range(runs):
        if mode == "full":
            with _database("FULL") as engine:
                pragmas = _pragmas(engine)
                results.append(_ingest(engine, records, batch, None))
        else:
            with _database(None) as engine:
                pragmas = _pragmas(engine)

                def durable(engine: Engine = engine) -> None:
                    assert make_durable(engine), "checkpoint incomplete"

                results.append(_ingest(engine, records, batch, durable))
        load.append(_load())
    rates = [r["records_per_s"] for r in results]
    latencies = [x for r in results for x in r["latencies"]]
    out = {
        "mode": mode,
        "batch": batch,
        "records": len(records),
        "pragmas": pragmas,
        "records_per_s_runs": rates,
        "records_per_s": statistics.median(rates),
        "last_tenth_records_per_s": statistics.median(
            r["tenths_records_per_s"][-1] for r in results
        ),
        "cpu_us_per_record": statistics.median(r["cpu_s"] for r in results) / len(records) * 1e6,
        "batch_latency_ms": {k: v * 1e3 for k, v in percentiles(latencies).items() if v},
        "load_1m": load,
    }
    print(
        f"raw {mode:6} batch {batch:5}: {out['records_per_s']:8.0f} rec/s "
        f"(runs {', '.join(f'{r:.0f}' for r in rates)}; last tenth "
        f"{out['last_tenth_records_per_s']:.0f}), batch p50 "
        f"{out['batch_latency_ms']['p50']:.1f} ms p99 {out['batch_latency_ms']['p99']:.1f} ms, "
        f"load {load[-1]:.2f}",
        flush=True,
    )
    return out


def _long(n: int, batch: int) -> dict[str, Any]:
    """One long run with synchronous=FULL: does the rate hold as the table and indexes grow?"""
    records = _records(n)
    load = [_load()]
    with _database("FULL") as engine:
        r = _ingest(engine, records, batch, None)
        with engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    load.append(_load())
    out = {
        "mode": "full",
        "batch": batch,
        "records": n,
        "records_per_s": r["records_per_s"],
        "wall_s": r["wall_s"],
        "tenths_records_per_s": r["tenths_records_per_s"],
        "batch_latency_ms": {k: v * 1e3 for k, v in percentiles(r["latencies"]).items() if v},
        "database_mb": pages * page_size / 1e6,
        "load_1m": load,
    }
    print(
        f"long full batch {batch}: {n} records at {out['records_per_s']:.0f} rec/s, tenths "
        f"{', '.join(f'{x:.0f}' for x in out['tenths_records_per_s'])}, "
        f"{out['database_mb']:.0f} MB, load {load[-1]:.2f}",
        flush=True,
    )
    return out


def _duplicates(records: list[UsageRecord], batch: int, runs: int) -> dict[str, Any]:
    rates = []
    with _database("FULL") as engine:
        for i in range(0, len(records), batch):
            insert_records(engine, records[i : i + batch])
        for _ in range(runs):
            t0 = time.perf_counter()
            added = sum(
                insert_records(engine, records[i : i + batch])
                for i in range(0, len(records), batch)
            )
            rates.append(len(records) / (time.perf_counter() - t0))
            assert added == 0, added
        assert _count(engine) == len(records)
    out = {
        "batch": batch,
        "records": len(records),
        "new_rows": 0,
        "records_per_s_runs": rates,
        "records_per_s": statistics.median(rates),
    }
    print(f"duplicates batch {batch}: {out['records_per_s']:.0f} rec/s, 0 new rows", flush=True)
    return out


async def _e2e_run(
    engine: Engine, journal: Path, records: list[UsageRecord], producers: int
) -> dict[str, float]:
    metering = Metering(engine, journal, "fsync")
    metering.start()
    batches: list[int] = []
    original = ledger.insert_records

    def counting(engine: Engine, records: Iterable[UsageRecord]) -> int:
        batch = list(records)
        batches.append(len(batch))
        return original(engine, batch)

    ledger.insert_records = counting  # LedgerWriter looks it up at call time
    try:
        shares = [records[p::producers] for p in range(producers)]
        acked = 0

        async def produce(share: list[UsageRecord]) -> None:
            nonlocal acked
            for r in share:
                await metering.record(r)
                acked += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        tasks = [asyncio.create_task(produce(s)) for s in shares]
        await asyncio.gather(*tasks)
        t_acked = time.perf_counter() - t0
        while await asyncio.to_thread(_count, engine) < len(records):  # noqa: ASYNC110 - poll
            await asyncio.sleep(0.02)
        t_ledger = time.perf_counter() - t0
        await metering.close()
        t_durable = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        ledger.insert_records = original
    return {
        "acked_s": t_acked,
        "in_ledger_s": t_ledger,
        "durable_s": t_durable,
        "records_per_s": len(records) / t_ledger,
        "records_per_s_durable": len(records) / t_durable,
        "cpu_us_per_record": cpu / len(records) * 1e6,
        "ledger_transactions": len(batches),
        "ledger_batch_mean": statistics.mean(batches) if batches else 0,
    }


def _e2e(records: list[UsageRecord], producers: int, runs: int) -> dict[str, Any]:
    results = []
    load = [_load()]
    pragmas: dict[str, Any] = {}
    for _ in range(runs):
        with _database(None) as engine, tempfile.TemporaryDirectory(prefix="tm-jrnl-") as j:
            pragmas = _pragmas(engine)
            results.append(asyncio.run(_e2e_run(engine, Path(j), records, producers)))
            assert _count(engine) == len(records)
            assert not list(Path(j).glob("usage-*.jsonl")), "journal not emptied after close"
        load.append(_load())
    med = {k: statistics.median([r[k] for r in results]) for k in results[0]}
    rates = [r["records_per_s"] for r in results]
    out: dict[str, Any] = {
        "producers": producers,
        "records": len(records),
        "journal_sync": "fsync",
        "pragmas": pragmas,
        "records_per_s_runs": rates,
        **med,
        "load_1m": load,
    }
    print(
        f"e2e producers {producers:4}: {out['records_per_s']:8.0f} rec/s in ledger "
        f"(runs {', '.join(f'{r:.0f}' for r in rates)}), "
        f"{out['records_per_s_durable']:.0f} rec/s to durable close, "
        f"{out['ledger_transactions']:.0f} ledger txns of {out['ledger_batch_mean']:.0f}, "
        f"load {load[-1]:.2f}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="per raw run")
    ap.add_argument("--batches", default="500,1000,5000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--long-records", type=int, default=1_000_000, help="one run; 0: skip")
    ap.add_argument("--e2e-records", type=int, default=100_000)
    ap.add_argument("--producers", default="64,512")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ledger_ingest.json"))
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    records = _records(args.records)
    print(f"{args.records} records, {os.cpu_count()} CPUs, load {_load():.2f}", flush=True)
    raw = [_raw(records, b, args.runs, "full") for b in batches]
    raw.append(_raw(records, 1000, args.runs, "normal"))
    dup = _duplicates(records, 1000, args.runs)
    long = _long(args.long_records, 1000) if args.long_records else None
    e2e_records = _records(args.e2e_records)
    e2e = [_e2e(e2e_records, int(p), args.runs) for p in args.producers.split(",")]
    result = {
        **run_info(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "raw": raw,
        "duplicates": dup,
        "long": long,
        "end_to_end": e2e,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
