"""Usage by ISO week and by month (`GET /admin/usage?group_by=tenant,week`), folded from the
ledger's days: exact sums that match the day totals and the grand total, on a real SQLite
ledger spanning a week boundary and a month boundary."""

from datetime import UTC, datetime
from pathlib import Path

from tokenmill.core.ids import new_request_id
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records, usage_totals
from tokenmill.store.db import make_engine, migrate, sqlite_url


def _at(day: str, tenant: str, prompt: int, completion: int, cached: int = 0) -> UsageRecord:
    noon = datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC).timestamp()
    return UsageRecord(
        request_id=new_request_id(), created_at=noon, tenant=tenant, key_id="key_1",
        model="m", deployment="m", replica="m-0", endpoint="chat", stream=False,
        prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, ttft_ms=1.0,
        duration_ms=2.0, status=200, outcome="ok", finish_reason="stop", usage_source="engine",
    )  # fmt: skip


def test_weeks_and_months_are_exact_sums_of_their_days(tmp_path: Path) -> None:
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    # 2026-11-29 is a Sunday (ISO week 48), 2026-11-30 a Monday (week 49, still November),
    # 2026-12-01 a Tuesday (week 49, December).
    insert_records(db, [
        _at("2026-11-29", "acme", 10, 1), _at("2026-11-29", "acme", 20, 2, cached=5),
        _at("2026-11-30", "acme", 30, 3), _at("2026-12-01", "acme", 40, 4),
        _at("2026-12-01", "beta", 7, 7),
    ])  # fmt: skip
    weeks = usage_totals(db, ["tenant", "week"])
    assert [(r["tenant"], r["week"], r["requests"], r["prompt_tokens"], r["cached_tokens"],
             r["completion_tokens"], r["total_tokens"]) for r in weeks] == [
        ("acme", "2026-W48", 2, 30, 5, 3, 33),
        ("acme", "2026-W49", 2, 70, 0, 7, 77),
        ("beta", "2026-W49", 1, 7, 0, 7, 14),
    ]  # fmt: skip
    months = usage_totals(db, ["month"])
    assert [(r["month"], r["requests"], r["total_tokens"]) for r in months] == [
        ("2026-11", 3, 66), ("2026-12", 2, 58),
    ]  # fmt: skip
    # The folding loses nothing: every grouping sums to the ledger's total.
    [total] = usage_totals(db, [])
    for rows in (weeks, months, usage_totals(db, ["day", "month"])):
        assert sum(r["total_tokens"] for r in rows) == total["total_tokens"] == 124
        assert sum(r["requests"] for r in rows) == total["requests"] == 5
    # A window and a tenant filter apply before the folding.
    since = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    assert [
        (r["week"], r["requests"]) for r in usage_totals(db, ["week"], since, None, "acme")
    ] == [("2026-W49", 2)]
