"""The economics report from kept hours equals the report from the ledger alone, for any
window: whole hours kept once final, ragged ends and recent hours measured each time."""

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tokenmill.billing.prices import PriceBook
from tokenmill.billing.rating import rate_records
from tokenmill.core.usage import UsageRecord
from tokenmill.economics.hourly import HOUR_S, SETTLE_S, HourlyEconomics
from tokenmill.economics.live import economics, estimated_power
from tokenmill.economics.nodes import Node, parse_nodes
from tokenmill.metering.ledger import insert_records
from tokenmill.store.db import make_engine, migrate, sqlite_url

T0 = 1_780_000_000 - 1_780_000_000 % 86400  # a UTC midnight
H = HOUR_S


def _nodes(tail: str = "") -> list[Node]:
    text = f"""
[node.gpu]
facility = "us-industrial"
deployments = ["chat-*"]
power_w = 700
cost = {{ mode = "owned", capex = "30000", years = 4, rate = "0.08" }}
[node.cpu]
facility = "us-industrial"
deployments = ["small"{tail}]
cost = {{ mode = "rented", per_hour = "0.5" }}
"""
    return parse_nodes(tomllib.loads(text))


def _record(rng: random.Random, n: int) -> UsageRecord:
    # Requests from a few seconds to 20 minutes long, so many cross an hour's end.
    at = T0 + rng.uniform(0, 10 * H)
    duration = rng.choice([rng.uniform(100, 5000), rng.uniform(60_000, 1_200_000)])
    return UsageRecord(
        request_id=f"r-{n}", created_at=at, tenant=rng.choice(["acme", "beta"]),
        key_id="k", model=rng.choice(["m1", "m2"]),
        deployment=rng.choice(["chat-a", "chat-b", "small", "elsewhere"]),
        replica=f"rep-{rng.randint(0, 2)}", endpoint="chat", stream=True,
        prompt_tokens=rng.randint(1, 4000), cached_tokens=0,
        completion_tokens=rng.randint(1, 800),
        ttft_ms=rng.choice([None, duration * rng.uniform(0.01, 0.5)]), duration_ms=duration,
        status=200, outcome="ok", finish_reason="stop", usage_source="engine", agent=None,
        queued_ms=rng.choice([None, 0.0, rng.uniform(0, 3000)]),
    )  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = make_engine(sqlite_url(Path(tmp_path_factory.mktemp("hours"))))
    migrate(engine)
    book = PriceBook(engine).load()
    book.add("*", {"input": "0.15", "cached_input": "0.075", "output": "0.6"}, "USD",
             effective_from=T0 - 86400, source="test", book="test")  # fmt: skip
    rng = random.Random(17)
    records = [_record(rng, n) for n in range(1500)]
    insert_records(engine, records)
    rate_records(engine, book, records)
    return engine


WINDOWS = [(T0, T0 + 10 * H), (T0 + 1.5 * H, T0 + 7 * H + 123.25), (T0 + 2 * H, T0 + 3 * H),
           (T0 + 0.2 * H, T0 + 0.9 * H), (T0 - 5 * H, T0 + 12 * H)]  # fmt: skip


def _same(kept: dict[str, Any], fresh: dict[str, Any]) -> None:
    """Equal to the last shown digit; busy seconds (floats summed hour by hour) to a ns."""
    for a, b in zip(kept["nodes"], fresh["nodes"], strict=True):
        assert a["inputs"].pop("busy_s") == pytest.approx(b["inputs"].pop("busy_s"), abs=1e-9)
        assert a.pop("utilisation") == pytest.approx(b.pop("utilisation"), abs=1e-12)
        energy_a, energy_b = a.pop("energy"), b.pop("energy")
        assert energy_a.keys() == energy_b.keys()
        for k, v in energy_a.items():
            assert v == (
                pytest.approx(energy_b[k], rel=1e-9) if isinstance(v, float) else energy_b[k]
            )
    assert kept == fresh


@pytest.mark.parametrize("since,until", WINDOWS)
def test_a_report_from_kept_hours_equals_the_ledgers(db: Engine, since: float, until: float):
    nodes = _nodes()
    hours = HourlyEconomics(db)
    later = T0 + 30 * H  # every hour of the data is final
    fresh = economics(db, nodes, since, until, estimated_power)
    _same(hours.report(nodes, since, until, estimated_power, now=later), fresh)
    fresh = economics(db, nodes, since, until, estimated_power)
    _same(hours.report(nodes, since, until, estimated_power, now=later), fresh)  # kept now


def test_recent_hours_are_not_kept_and_a_new_layout_is_measured_anew(db: Engine):
    hours = HourlyEconomics(db)
    nodes = _nodes()
    soon = T0 + 6 * H + SETTLE_S / 2  # hours 5 and 6 may still get records
    hours.report(nodes, T0, T0 + 6 * H, estimated_power, now=soon)
    assert sorted(h for _, h in hours._hours) == [T0 + i * H for i in range(5)]
    moved = _nodes(', "chat-b"')  # chat-b now also counts on the cpu node (first match wins)
    moved = [moved[1], moved[0]]
    fresh = economics(db, moved, T0, T0 + 4 * H, estimated_power)
    _same(hours.report(moved, T0, T0 + 4 * H, estimated_power, now=soon), fresh)


def test_a_window_from_1970_to_9999_measures_only_the_hours_with_data(db: Engine):
    hours = HourlyEconomics(db)
    nodes = _nodes()
    later = T0 + 30 * H
    fresh = economics(db, nodes, 0.0, 253402300799.0, estimated_power)
    _same(hours.report(nodes, 0.0, 253402300799.0, estimated_power, now=later), fresh)
    assert len(hours._hours) <= 30  # the hours from the first record to now, not 70 years


def test_warming_measures_the_final_hours_once(db: Engine):
    hours = HourlyEconomics(db)
    nodes = _nodes()
    now = T0 + 12 * H
    made = hours.warm(nodes, days=1, now=now, pause_s=0)
    # From the first record's hour (T0) to the last final one (T0 + 10 h), not a whole day.
    assert made == 11 and hours.warm(nodes, days=1, now=now, pause_s=0) == 0
    hours.close()
    assert hours.warm(nodes, days=3, now=now + 86400, pause_s=0) == 0  # closed: stops at once
