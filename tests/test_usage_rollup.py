"""The usage history (issue 16): hourly and daily rollups kept in the ledger's and the rating's
own transactions, on a real SQLite database. They equal the ledger and the charges exactly,
through in-batch duplicates, replays and re-rating; migration 0015's backfill makes the same
rows; reads from them equal reads from the ledger; retention prunes them, never the ledger."""

import math
import random
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

import tokenmill.metering.ledger as ledger
from tokenmill.api import admin_routes
from tokenmill.api.errors import install_error_handlers
from tokenmill.api.state import services
from tokenmill.billing.prices import PriceBook
from tokenmill.billing.rating import rate_pending, rate_records
from tokenmill.core.errors import InvalidRequest
from tokenmill.core.money import PICO
from tokenmill.core.usage import UsageRecord
from tokenmill.metering import history
from tokenmill.metering.ledger import insert_records, ledger_totals, usage_totals
from tokenmill.metering.rollup import prune
from tokenmill.metering.series import Filters, Window, estimate_quantile, usage_series
from tokenmill.security.keys import Principal
from tokenmill.security.roles import Role
from tokenmill.store import db as store_db
from tokenmill.store import upserts
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import Tenant, UsageRow

H, D = 3600, 86_400
T0 = datetime(2026, 11, 29, tzinfo=UTC).timestamp()  # a Sunday: weeks and a month end within
BOUNDS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
FIELDS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens")


def _record(rng: random.Random, n: int) -> UsageRecord:
    # Times on and next to hour and day boundaries as well as anywhere in 4 days.
    at = T0 + rng.choice([rng.uniform(0, 4 * D), rng.randrange(0, 4 * D, H),
                          rng.randrange(H, 4 * D, H) - 1e-6])  # fmt: skip
    outcome, status = rng.choice([("ok", 200), ("partial", 499), ("partial", 502),
                                  ("error", 400), ("error", 503), ("partial", 500)])  # fmt: skip
    ttft = rng.choice([None, float(rng.choice(BOUNDS)), rng.uniform(0, 40_000), 7.5])
    prompt = rng.choice([0, rng.randint(1, 5000)])
    return UsageRecord(
        request_id=f"req-{n}", created_at=at, tenant=rng.choice(["acme", "beta", "corp"]),
        key_id=rng.choice(["k1", "k2", "k3", "k4"]), model=rng.choice(["m-a", "m-b", "m-c"]),
        deployment="d", replica="d-0", endpoint="chat", stream=False, prompt_tokens=prompt,
        cached_tokens=rng.randint(0, prompt), completion_tokens=rng.choice([0, 1, 900]),
        ttft_ms=ttft, duration_ms=10.0, status=status, outcome=outcome, finish_reason="stop",
        usage_source="engine", agent=rng.choice([None, None, "ag-1", "ag-2"]),
    )  # fmt: skip


def _db(tmp_path: Path) -> tuple[Engine, PriceBook]:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    book = PriceBook(engine).load()
    book.add("*", {"input": "0.15", "cached_input": "0.075", "output": "0.6"}, "USD",
             effective_from=T0 - D, source="test", book="test")  # fmt: skip
    with Session(engine) as s, s.begin():  # a contract price, in another currency
        s.add(Tenant(name="corp", display_name="corp", created_at=datetime.now(UTC)))
    book.add("m-c", {"input": "1.000001", "output": "2"}, "EUR", tenant="corp",
             effective_from=T0 - D, source="test", book="test")  # fmt: skip
    return engine, book


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, PriceBook]:
    """4 days of records written the way the ledger writer writes them, each batch rated as it
    went in: ids given twice in a batch (once with other numbers: the first is kept), and
    batches replayed whole (the journal after a crash), and rated again."""
    engine, book = _db(tmp_path_factory.mktemp("rollup"))
    rng = random.Random(16)
    records = [_record(rng, n) for n in range(3000)]
    batches = [records[i : i + 250] for i in range(0, len(records), 250)]
    for i, batch in enumerate(batches):
        first = int(batch[0].request_id.removeprefix("req-"))
        twice = [*batch, *rng.sample(batch, 20), _record(rng, first)]
        assert insert_records(engine, twice) == len(batch)
        rate_records(engine, book, twice)
        if i % 3 == 2:
            assert insert_records(engine, batches[i - 1] + batch) == 0
            rate_records(engine, book, batches[i - 1] + batch)
    assert rate_pending(engine, book) == 0  # rating kept up
    return engine, book


def _bucket(at: float, grain: int) -> int:
    """The bucket the ledger's window filters put `at` in: start <= at < start + grain."""
    start = math.floor(at / grain) * grain
    while at < start:
        start -= grain
    while at >= start + grain:
        start += grain
    return start


def _slot(ttft: float | None) -> int | None:
    return None if ttft is None else next((i for i, b in enumerate(BOUNDS) if ttft <= b), 9)


def _expected_usage(engine: Engine) -> dict[tuple[Any, ...], list[int]]:
    """The rollup worked out here from the ledger's rows, with no code of the rollup's."""
    out: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 15)
    with engine.connect() as conn:
        for r in conn.execute(select(UsageRow)):
            for grain in (H, D):
                key = (grain, _bucket(r.created_at, grain), r.tenant, r.key_id, r.model,
                       r.agent or "")  # fmt: skip
                sums = out[key]
                error = r.outcome == "error" or r.status >= 500
                for i, n in enumerate((1, error, r.prompt_tokens, r.cached_tokens,
                                       r.completion_tokens)):  # fmt: skip
                    sums[i] += n
                if (slot := _slot(r.ttft_ms)) is not None:
                    sums[5 + slot] += 1
    return dict(out)


def _expected_revenue(engine: Engine) -> dict[tuple[Any, ...], int]:
    out: dict[tuple[Any, ...], int] = defaultdict(int)
    q = text(
        "SELECT c.created_at, c.tenant, r.key_id, c.model, r.agent, c.currency, c.pico "
        "FROM usage_charges c JOIN usage_records r ON r.request_id = c.request_id"
    )
    with engine.connect() as conn:
        for at, tenant, key_id, model, agent, currency, pico in conn.execute(q):
            for grain in (H, D):
                key = (grain, _bucket(at, grain), tenant, key_id, model, agent or "", currency)
                out[key] += pico
    return dict(out)


def _table(engine: Engine, name: str) -> dict[tuple[Any, ...], Any]:
    """A rollup table as {key: sums}."""
    width = 6 if name == "usage_rollup" else 7
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {name}")).all()
    return {tuple(r[:width]): list(r[width:]) if name == "usage_rollup" else r[width] for r in rows}


def test_the_rollups_equal_the_ledger_and_the_charges_exactly(filled):
    engine, _ = filled
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(UsageRow)) == 3000
        currencies = set(conn.scalars(text("SELECT DISTINCT currency FROM usage_charges")))
    assert currencies == {"USD", "EUR"}
    assert _table(engine, "usage_rollup") == _expected_usage(engine)
    assert _table(engine, "revenue_rollup") == _expected_revenue(engine)


def test_the_migrations_backfill_makes_the_same_rows(filled, tmp_path: Path):
    engine, _ = filled
    live = (_table(engine, "usage_rollup"), _table(engine, "revenue_rollup"))
    copy = make_engine(sqlite_url(tmp_path))
    with engine.connect() as conn:  # a copy of the database, to leave the fixture's alone
        conn.exec_driver_sql(f"VACUUM INTO '{tmp_path / 'tokenmill.db'}'")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_db.__file__).parent / "migrations"))
    with copy.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0014")  # an older database: the ledger and charges, no rollup
        command.upgrade(cfg, "head")
    assert (_table(copy, "usage_rollup"), _table(copy, "revenue_rollup")) == live


WINDOWS = [
    (None, None), (T0, None), (None, T0 + 2 * D), (T0 + 5 * H, T0 + 3 * D + 7 * H),
    (T0 + D, T0 + 2 * D), (T0 + 25 * H, T0 + 30 * H), (T0 + 23 * H, T0 + 26 * H),
]  # fmt: skip
GROUPINGS = [[], ["tenant"], ["key"], ["model"], ["agent"], ["day"], ["tenant", "model", "day"],
             ["week"], ["month", "agent"], ["key", "model", "agent", "day"]]  # fmt: skip


@pytest.mark.parametrize("since,until", WINDOWS)
def test_usage_totals_from_the_rollup_equal_the_ledgers(filled, since, until, monkeypatch):
    engine, _ = filled
    assert history.answers(["tenant", "day"], since, until) and history.covers(engine, since)
    for group_by in GROUPINGS:
        for tenant in (None, "beta"):
            from_rollup = usage_totals(engine, group_by, since, until, tenant)
            with monkeypatch.context() as m:
                m.setattr(history, "answers", lambda *_: False)
                assert from_rollup == usage_totals(engine, group_by, since, until, tenant)


RAGGED = [(T0 + 1.5, T0 + 5 * H + 17.25), (T0 + 0.25 * H, T0 + 0.75 * H),
          (T0 + 23.5 * H, None), (None, T0 + 2 * D + 0.5)]  # fmt: skip


@pytest.mark.parametrize("since,until", RAGGED)
def test_windows_that_are_not_whole_hours_add_their_ends_from_the_ledger(
    filled, since, until, monkeypatch
):
    engine, _ = filled
    for group_by in GROUPINGS:
        for tenant in (None, "beta"):
            mixed = usage_totals(engine, group_by, since, until, tenant)
            with monkeypatch.context() as m:
                m.setattr(history, "answers", lambda *_: False)
                assert mixed == usage_totals(engine, group_by, since, until, tenant)
    assert usage_totals(engine, [], since, until), "the window holds records"


def test_what_the_rollup_cannot_answer_goes_to_the_ledger():
    assert not history.answers(["owner"], None, None)
    assert not history.answers(["replica"], None, None)
    assert not history.answers(["tenant"], T0 + 1.5, None)  # not a whole hour
    assert not history.answers([], None, 1e300)
    assert history.answers(["key", "day"], T0 + H, T0 + 5 * H)


def test_a_race_on_sqlite_rolls_the_batch_back(tmp_path: Path, monkeypatch):
    engine, _ = _db(tmp_path)
    rng = random.Random(1)
    first = [_record(rng, n) for n in range(10)]
    insert_records(engine, first)
    before = _table(engine, "usage_rollup")
    # As if another writer inserted these ids between the look and the insert.
    monkeypatch.setattr(ledger, "held_keys", lambda *_: set())
    with pytest.raises(upserts.Raced):
        insert_records(engine, [*first[:3], _record(rng, 99)])
    assert _table(engine, "usage_rollup") == before
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(UsageRow)) == 10


def test_retention_prunes_the_history_never_the_ledger(tmp_path: Path):
    engine, book = _db(tmp_path)
    rng = random.Random(2)
    records = [_record(rng, n) for n in range(400)]
    insert_records(engine, records)
    rate_records(engine, book, records)
    assert history.horizon(engine) is None
    # Keep 2 days as seen from the end of the 4th: the first 2 days go.
    assert prune(engine, keep_days=2, now=T0 + 4 * D + 5) > 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(UsageRow)) == 400
        kept = conn.scalar(text("SELECT MIN(bucket) FROM usage_rollup"))
        kept_revenue = conn.scalar(text("SELECT MIN(bucket) FROM revenue_rollup"))
    assert min(kept, kept_revenue) >= T0 + 2 * D == history.horizon(engine)
    assert not history.covers(engine, None) and not history.covers(engine, T0 + D)
    assert history.covers(engine, T0 + 2 * D)
    for since in (None, T0 + D, T0 + 2 * D, T0 + 3 * D):
        assert usage_totals(engine, ["tenant", "day"], since) == ledger_totals(
            engine, ["tenant", "day"], since
        )
    assert prune(engine, keep_days=1, now=T0 + 30 * D) > 0  # all of it
    assert history.horizon(engine) == T0 + 4 * D  # the day after the last record
    assert usage_totals(engine, []) == ledger_totals(engine, [])


def _sums(points, key: str) -> int:
    return sum(p.counts[key] for p in points)


def test_a_series_has_every_bucket_and_the_ledgers_sums(filled):
    engine, _ = filled
    hours = Window.of("hour", T0 + 90 * 60, T0 + D + 1, now=0)
    assert (hours.start, hours.end, hours.step) == (T0 + H, T0 + D + H, H)
    points = usage_series(engine, hours, Filters())
    assert [p.t for p in points] == list(range(int(T0 + H), int(T0 + D + H), H))
    [total] = ledger_totals(engine, [], T0 + H, T0 + D + H)
    assert _sums(points, "requests") == total["requests"]
    assert _sums(points, "prompt_tokens") == total["prompt_tokens"]
    days = usage_series(engine, Window.of("day", T0 - 3 * D, T0 + 5 * D, now=0), Filters())
    assert [p.counts["requests"] for p in days][:3] == [0, 0, 0]  # before any record: zeros
    assert days[0].revenue == {} and days[0].ttft_ms(0.5) is None
    revenue = _table(engine, "revenue_rollup")
    for currency in ("USD", "EUR"):
        assert sum(p.revenue.get(currency, 0) for p in days) == sum(
            pico for k, pico in revenue.items() if k[0] == D and k[-1] == currency
        )
    # All four filters: the ledger's sums for that tenant, model, key and agent.
    groups = ledger_totals(engine, ["model", "key", "agent"], T0, T0 + 4 * D, "corp")
    [one] = [r for r in groups if (r["model"], r["key"], r["agent"]) == ("m-c", "k2", "ag-1")]
    f = Filters(tenant="corp", model="m-c", key_id="k2", agent="ag-1")
    filtered = usage_series(engine, Window.of("day", T0, T0 + 4 * D, now=0), f)
    assert _sums(filtered, "requests") == one["requests"]
    assert _sums(filtered, "completion_tokens") == one["completion_tokens"]


def test_the_window_is_bounded():
    with pytest.raises(InvalidRequest, match="at most 2000"):
        Window.of("hour", 0, 2001 * H, now=0)
    assert Window.of("hour", 0, 2000 * H, now=0).end == 2000 * H
    with pytest.raises(InvalidRequest, match="before until"):
        Window.of("day", T0, T0, now=0)
    open_ended = Window.of("day", None, None, now=T0 + 5)
    assert (open_ended.start, open_ended.end) == (T0 + D - 90 * D, T0 + D)


def test_ttft_percentiles_are_estimated_as_histogram_quantile_does():
    counts = [0] * 10
    counts[2] = 10  # ten in (100, 250] ms
    assert estimate_quantile(0.5, counts) == 175.0
    assert estimate_quantile(0.9, counts) == 235.0
    counts[0] = 10  # and ten in (0, 50]
    assert estimate_quantile(0.5, counts) == 50.0
    assert estimate_quantile(0.25, counts) == 25.0
    assert estimate_quantile(0.99, [0] * 9 + [3]) == 30000.0  # above every bound: the last bound
    assert estimate_quantile(0.5, [0] * 10) is None


def _app(engine: Engine, role: Role, tenant: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(admin_routes.router)
    principal = Principal(key_id="k", tenant=tenant, role=role)
    app.dependency_overrides[admin_routes.admin] = lambda: principal
    app.dependency_overrides[services] = lambda: SimpleNamespace(db=engine)
    return app


async def test_the_series_route_keeps_a_tenant_admin_to_its_tenant(filled):
    engine, _ = filled
    params = {"step": "day", "since": T0, "until": T0 + 4 * D}
    transport = httpx.ASGITransport(app=_app(engine, Role.TENANT_ADMIN, "corp"))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = (await client.get("/admin/usage/series", params=params)).json()
        assert body["step"] == "day" and body["history_from"] is None
        assert [p["t"] for p in body["data"]] == [T0 + i * D for i in range(4)]
        [corp] = ledger_totals(engine, [], T0, T0 + 4 * D, "corp")
        assert sum(p["requests"] for p in body["data"]) == corp["requests"]
        assert set(body["data"][0]) == {"t", *FIELDS, "ttft_p50_ms", "ttft_p90_ms", "revenue"}
        eur = sum(Decimal(p["revenue"].get("EUR", "0")) for p in body["data"])
        rollup = _table(engine, "revenue_rollup").items()
        pico = sum(v for k, v in rollup if k[0] == D and k[2] == "corp" and k[-1] == "EUR")
        assert eur == Decimal(pico) / PICO  # every digit: exact
        other = await client.get("/admin/usage/series", params={**params, "tenant": "acme"})
        assert other.status_code == 403
        many = await client.get("/admin/usage/series", params={"since": 0, "until": 1e9})
        assert many.status_code == 400 and "at most 2000" in many.json()["error"]["message"]
        usage = (await client.get("/admin/usage", params={"group_by": "tenant"})).json()
        assert [r["tenant"] for r in usage["data"]] == ["corp"]
