"""Billing on a real SQLite ledger: prices, rating, invoices; exact and idempotent."""

import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from tokenmill.billing.invoices import Invoices, Period
from tokenmill.billing.prices import PriceBook
from tokenmill.billing.rating import rate_pending, rate_records
from tokenmill.core.errors import Conflict
from tokenmill.core.money import PICO, Money, parse_rate
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.metering.service import Metering
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import Tenant, UsageCharge

NOV = Period.month("2026-11")
DEC = Period.month("2026-12")
_tenants = itertools.count()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    db = make_engine(sqlite_url(tmp_path_factory.mktemp("billing")))
    migrate(db)
    return db


@pytest.fixture(scope="module")
def book(engine: Engine) -> PriceBook:
    return PriceBook(engine).load()


def _tenant(engine: Engine, name: str) -> None:
    with Session(engine) as s, s.begin():
        if s.get(Tenant, name) is None:
            s.add(Tenant(name=name, display_name=name, created_at=datetime.now(UTC)))


def _record(
    rid: str,
    tenant: str,
    at: float,
    prompt: int,
    cached: int,
    out: int,
    model: str = "smollm2-135m",
) -> UsageRecord:
    return UsageRecord(
        rid,
        at,
        tenant,
        "key_x",
        model,
        model,
        "r0",
        "chat",
        False,
        prompt,
        cached,
        out,
        None,
        1.0,
        200,
        "ok",
        "stop",
        "engine",
    )


def test_a_tenants_own_exact_and_latest_rule_wins(engine: Engine, book: PriceBook):
    at = NOV.start + 10
    assert book.rule_for("smollm2-135m", "input", "anyone", at).pico_per_token == 20_000
    assert book.rule_for("unknown-model", "output", "anyone", at).model == "*"
    _tenant(engine, "vip")  # a contract price is for a tenant that exists
    book.add(
        "smollm2-135m",
        {"input": "0.01"},
        "USD",
        tenant="vip",
        effective_from=NOV.start,
        source="contract 42",
    )
    book.add("smollm2-135m", {"input": "0.03"}, "USD", effective_from=NOV.end, source="Dec list")
    assert book.rule_for("smollm2-135m", "input", "vip", at).pico_per_token == 10_000
    assert book.rule_for("smollm2-135m", "input", "other", at).pico_per_token == 20_000
    assert book.rule_for("smollm2-135m", "input", "other", DEC.start).pico_per_token == 30_000


def test_a_thousand_copies_of_one_event_count_once(engine: Engine, book: PriceBook):
    tenant = f"copies{next(_tenants)}"
    event = _record("req-once", tenant, NOV.start + 5, 120, 20, 30)
    for _ in range(1000):
        insert_records(engine, [event])
    rate_pending(engine, book)
    rate_pending(engine, book)
    with engine.connect() as conn:
        charges = conn.execute(
            select(UsageCharge.token_class, UsageCharge.tokens).where(UsageCharge.tenant == tenant)
        ).all()
    assert sorted(charges) == [("cached_input", 20), ("input", 100), ("output", 30)]


def _invoice_totals(engine: Engine, book: PriceBook, tenant: str, deliveries, split: int):
    """Deliver events in the given order (copies included); close November after the first
    `split` deliveries and December after the rest."""
    invoices = Invoices(engine, book)
    for batch in deliveries[:split]:
        insert_records(engine, batch)
    rate_pending(engine, book)
    nov = invoices.close(tenant, NOV, now=DEC.start, grace_s=0, tax_rate=Decimal("0.06"))
    for batch in deliveries[split:]:
        insert_records(engine, batch)
    rate_pending(engine, book)
    dec = invoices.close(tenant, DEC, now=DEC.end, grace_s=0, tax_rate=Decimal("0.06"))
    return nov, dec


events = st.lists(
    st.tuples(
        st.integers(0, 5000),
        st.integers(0, 100),
        st.integers(0, 3000),
        st.integers(0, int(NOV.end - NOV.start) - 1),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=events, data=st.data())
def test_duplicated_reordered_and_late_events_give_the_same_bills(engine, book, events, data):
    tenant_a, tenant_b = f"prop{next(_tenants)}", f"prop{next(_tenants)}"

    def recs(tenant: str) -> list[UsageRecord]:
        return [
            _record(f"{tenant}-{i}", tenant, NOV.start + t, p + c, min(c, p + c), o)
            for i, (p, c, o, t) in enumerate(events)
        ]

    # a: each event once, in order, all before November closes
    in_order = [[r] for r in recs(tenant_a)]
    nov_a, dec_a = _invoice_totals(engine, book, tenant_a, in_order, len(in_order))
    # b: shuffled, with copies, some arriving only after November closed
    shuffled = [[r] for r in recs(tenant_b) for _ in range(data.draw(st.integers(1, 3)))]
    data.draw(st.randoms()).shuffle(shuffled)
    split = data.draw(st.integers(0, len(shuffled)))
    nov_b, dec_b = _invoice_totals(engine, book, tenant_b, shuffled, split)
    late = {r.request_id for batch in shuffled[split:] for r in batch} - {
        r.request_id for batch in shuffled[:split] for r in batch
    }

    def money(invoices) -> Decimal:  # exact: tokens x rate, before any rounding
        return sum(
            (
                Decimal(x["tokens"]) * Decimal(x["unit_price"]) / 10**6
                for inv in invoices
                for x in inv["lines"]
            ),
            Decimal(0),
        )

    def lines(invoices) -> list[tuple]:
        return [
            (x["model"], x["token_class"], x["tokens"], x["amount"])
            for inv in invoices
            for x in inv["lines"]
        ]

    assert money(nov_a + dec_a) == money(nov_b + dec_b)  # every event billed exactly once
    if not late:  # all on time: the same November invoice, line for line
        assert lines(nov_a) == lines(nov_b)
        assert [i["total"] for i in nov_a] == [i["total"] for i in nov_b]
    else:  # late ones are December's adjustments, never an edit of November
        assert all(line["kind"] == "adjustment" for inv in dec_b for line in inv["lines"])


def test_money_over_a_million_random_records_is_exact():
    rng = random.Random(7)
    rates = [parse_rate(f"{rng.randint(0, 99_999_999) / 1_000_000:.6f}") for _ in range(1000)]
    total, as_decimal, as_float = 0, Decimal(0), 0.0
    for _ in range(1_000_000):
        tokens, rate = rng.randint(1, 20_000), rates[rng.randrange(1000)]
        total += tokens * rate
        as_decimal += Decimal(tokens) * (Decimal(rate) / PICO)
        as_float += tokens * rate / PICO
    assert Money(total, "USD").decimal() == as_decimal  # exact: no drift at all
    assert Decimal(repr(as_float)) != as_decimal  # (floats would have drifted)


def test_an_invoice_waits_for_its_grace_and_is_issued_once(engine: Engine, book: PriceBook):
    tenant = f"grace{next(_tenants)}"
    insert_records(engine, [_record(f"{tenant}-1", tenant, NOV.start + 1, 1000, 0, 500)])
    rate_pending(engine, book)
    invoices = Invoices(engine, book)
    with pytest.raises(Conflict, match="takes late usage until"):
        invoices.close(tenant, NOV, now=NOV.end + 10, grace_s=3600, tax_rate=Decimal(0))
    (issued,) = invoices.close(
        tenant, NOV, now=NOV.end + 3600, grace_s=3600, tax_rate=Decimal("0.06")
    )
    # 1000 input x 0.02/1M + 500 output x 0.04/1M = 0.00004 USD: rounds to 0.00
    assert [x["amount"] for x in issued["lines"]] == ["0.000020", "0.000020"]
    assert (issued["subtotal"], issued["tax"], issued["total"]) == ("0.00", "0.00", "0.00")
    with pytest.raises(Conflict, match="already invoiced"):
        invoices.close(tenant, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoices SET body = '{}'",
        "DELETE FROM invoices",
        "UPDATE usage_charges SET tokens = 0 WHERE invoice_id IS NOT NULL",
        "DELETE FROM usage_charges WHERE invoice_id IS NOT NULL",
    ],
)
def test_the_database_refuses_to_change_an_issued_invoice(engine, book, statement):
    tenant = f"frozen{next(_tenants)}"
    insert_records(engine, [_record(f"{tenant}-1", tenant, NOV.start + 1, 10, 0, 10)])
    rate_pending(engine, book)
    Invoices(engine, book).close(tenant, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    with pytest.raises(DatabaseError, match="invoices are immutable"), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(UsageCharge).where(UsageCharge.tenant == tenant)
            ).scalar()
            == 2
        )


def test_period_parsing():
    assert datetime.fromtimestamp(Period.month("2026-12").end, UTC).year == 2027


def test_a_volume_tier_discounts_the_months_usage(engine: Engine, book: PriceBook):
    tenant = f"volume{next(_tenants)}"
    invoices = Invoices(engine, book)
    invoices.add_tier(None, 10**12, Decimal("50"))  # far out of reach: no effect here
    invoices.add_tier(tenant, 1_000_000, Decimal("10"))
    insert_records(engine, [_record(f"{tenant}-1", tenant, NOV.start + 1, 2_000_000, 0, 500_000)])
    rate_pending(engine, book)
    (issued,) = invoices.close(tenant, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    # 2M input x 0.02 + 0.5M output x 0.04 = 0.06; 10% off = -0.006
    assert [(x["kind"], x["amount"]) for x in issued["lines"]] == [
        ("usage", "0.040000"),
        ("usage", "0.020000"),
        ("discount", "-0.006000"),
    ]
    assert issued["subtotal"] == "0.05"  # 0.054 rounded half to even


def test_months_close_in_order(engine: Engine, book: PriceBook):
    tenant = f"order{next(_tenants)}"
    oct_ = Period.month("2026-10")
    insert_records(
        engine,
        [
            _record(f"{tenant}-oct", tenant, oct_.start + 1, 10, 0, 10),
            _record(f"{tenant}-nov", tenant, NOV.start + 1, 10, 0, 10),
        ],
    )
    rate_pending(engine, book)
    invoices = Invoices(engine, book)
    with pytest.raises(Conflict, match="close 2026-10 first"):
        invoices.close(tenant, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    (oct_bill,) = invoices.close(tenant, oct_, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    (nov_bill,) = invoices.close(tenant, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    assert [x["kind"] for x in oct_bill["lines"] + nov_bill["lines"]] == ["usage"] * 4


async def test_records_are_rated_as_the_ledger_takes_them(tmp_path):
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    prices = PriceBook(db).load()
    metering = Metering(db, tmp_path / "journal", "write")
    metering.on_inserted(lambda records: rate_records(db, prices, records))
    metering.start()
    await metering.record(_record("live-1", "live", NOV.start + 1, 100, 40, 10))
    await metering.close()  # the ledger takes the record, then rates it: no sweep ran
    with db.connect() as conn:
        rows = conn.execute(select(UsageCharge.token_class, UsageCharge.tokens)).all()
    assert sorted(rows) == [("cached_input", 40), ("input", 60), ("output", 10)]
