"""Invoices sealed, the triggers that keep them immutable checked, and reconcile counting money:
on a real SQLite store, tampered with by direct SQL as an intruder would (issue 14, finding 4:
`INSERT OR REPLACE` passed the no-update triggers, `DROP TRIGGER` + `UPDATE` worked and stayed
unseen, `invoices show` said 0.00, and reconcile compared tokens only)."""

from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DatabaseError

import tokenmill.store.db
from tokenmill.billing.invoice_drift import invoice_drift
from tokenmill.billing.invoices import Invoices, Period
from tokenmill.billing.prices import PriceBook
from tokenmill.billing.rating import rate_pending
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.security.audit import AuditLog
from tokenmill.security.doctor import Facts, examine
from tokenmill.security.integrity import Integrity
from tokenmill.security.pii import PiiMode
from tokenmill.security.profiles import Profile
from tokenmill.store import triggers
from tokenmill.store.db import make_engine, migrate, sqlite_url

KEY = b"k" * 32
NOV, DEC = Period.month("2026-11"), Period.month("2026-12")
TENANT = "acme"


def _usage(db: Engine, n: int, at: float, prefix: str = "r") -> None:
    records = [
        UsageRecord(
            f"{prefix}{i}",
            at + i,
            TENANT,
            "key_x",
            "smollm2-135m",
            "smollm2-135m",
            "r0",
            "chat",
            False,
            1_000_000 * (i + 1),
            250_000,
            500_000,
            None,
            1.0,
            200,
            "ok",
            "stop",
            "engine",
        )
        for i in range(n)
    ]
    insert_records(db, records)


class Shop:
    """A data directory with one issued, sealed invoice (November) and its audit log."""

    def __init__(self, tmp_path: Path, db: Engine | None = None) -> None:
        self.db = db or _migrated(tmp_path)
        self.book = PriceBook(self.db).load()
        self.audit = AuditLog(self.db, KEY, [tmp_path / "audit-checkpoints.log"])
        self.integrity = Integrity(self.db, self.audit)
        self.integrity.at_start(Profile.SME)
        self.invoices = Invoices(self.db, self.book, self.integrity.seals)

    def close(self, period: Period = NOV, now: float = DEC.end) -> dict:
        rate_pending(self.db, self.book)
        (issued,) = self.invoices.close(TENANT, period, now=now, grace_s=0,
                                        tax_rate=Decimal("0.06"))  # fmt: skip
        return issued

    def sql(self, statement: str, **params: object) -> None:
        with self.db.begin() as conn:
            conn.execute(text(statement), params)

    def problems(self) -> list[str]:
        return self.integrity.check().problems()


def _migrated(tmp_path: Path) -> Engine:
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    return db


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    s = Shop(tmp_path)
    _usage(s.db, 3, NOV.start + 3600)
    s.issued = s.close()
    return s


def test_an_issued_invoice_is_sealed_audited_and_reconciles(shop: Shop):
    report = shop.integrity.check()
    assert report.ok, report.problems()
    (audited,) = shop.audit.details("invoice.sealed")
    assert audited[1]["invoice"] == shop.issued["id"] and len(audited[1]["seal"]) == 64
    (drift,) = invoice_drift(shop.db)
    assert drift["status"] == "ok"
    assert drift["amount_lines"] == drift["amount_charges"] == "0.166500"
    assert drift["total"] == drift["total_expected"] == shop.issued["total"] == "0.18"


def test_insert_or_replace_on_an_invoice_is_refused(shop: Shop):
    replace = (
        "INSERT OR REPLACE INTO invoices SELECT id, number, tenant, currency, period_start, "
        "period_end, issued_at, tax_rate, json_set(body, '$.total', '0.00') FROM invoices"
    )
    with pytest.raises(DatabaseError, match="invoices are immutable"):
        shop.sql(replace)
    assert shop.problems() == []
    # around the refusal: the trigger dropped, the invoice replaced, the trigger put back
    shop.sql("DROP TRIGGER invoices_no_replace")
    shop.sql(replace)
    assert shop.invoices.get(shop.issued["id"])["total"] == "0.00"
    problems = shop.problems()
    assert any("changed after it was issued" in p for p in problems)
    assert "database trigger invoices_no_replace is missing" in problems
    triggers.restore(shop.db, ["invoices_no_replace"])
    assert any("changed after it was issued" in p for p in shop.problems())
    (drift,) = invoice_drift(shop.db)
    assert drift["status"] == "drift" and (drift["total"], drift["total_expected"]) == (
        "0.00",
        "0.18",
    )
    with pytest.raises(RuntimeError, match=r"changed after it was issued.*finance profile"):
        shop.integrity.at_start(Profile.FINANCE)


def test_insert_or_replace_on_a_billed_charge_changes_nothing(shop: Shop):
    shop.sql(
        "INSERT OR REPLACE INTO usage_charges SELECT request_id, token_class, tenant, "
        "model, created_at, tokens, rule_id, currency, 0, invoice_id FROM usage_charges"
    )
    assert shop.problems() == []
    (drift,) = invoice_drift(shop.db)
    assert drift["status"] == "ok"


def test_a_dropped_trigger_and_an_update_are_seen_and_the_trigger_restored(
    shop: Shop, caplog: pytest.LogCaptureFixture
):
    shop.sql("DROP TRIGGER invoices_no_update")
    shop.sql("UPDATE invoices SET body = json_set(body, '$.total', '0.00')")
    assert shop.invoices.get(shop.issued["id"])["total"] == "0.00"
    problems = shop.problems()
    assert "database trigger invoices_no_update is missing" in problems
    assert any("changed after it was issued" in p for p in problems)
    with pytest.raises(RuntimeError, match=r"invoices_no_update \(missing\).*finance profile"):
        shop.integrity.at_start(Profile.FINANCE)
    notes = shop.integrity.at_start(Profile.SME)  # another profile restores it, and says so
    assert notes == ["database triggers restored: invoices_no_update (missing)"]
    assert shop.audit.details("store.triggers_restored")[-1][1]["triggers"] == {
        "invoices_no_update": "missing"
    }
    assert triggers.problems(shop.db) == {}
    assert any("changed after it was issued" in p for p in shop.problems())  # still seen
    with pytest.raises(DatabaseError, match="immutable"):
        shop.sql("UPDATE invoices SET tax_rate = '0'")
    assert shop.audit.verify().ok


def test_a_trigger_replaced_by_one_that_does_nothing_is_seen(shop: Shop):
    shop.sql("DROP TRIGGER charges_billed_no_update")
    shop.sql("CREATE TRIGGER charges_billed_no_update BEFORE UPDATE ON usage_charges "
             "WHEN 0 BEGIN SELECT RAISE(ABORT, 'no'); END")  # fmt: skip
    shop.sql("UPDATE usage_charges SET pico = 0 WHERE token_class = 'output'")
    problems = shop.problems()
    assert "database trigger charges_billed_no_update is altered" in problems
    assert any("changed after it was issued" in p for p in problems)
    (drift,) = invoice_drift(shop.db)  # the charges' money no longer matches: tokens do
    assert drift["lines"] == drift["charges"] and drift["mispriced_charges"] == 3
    assert drift["status"] == "drift"


def test_usage_moved_onto_an_issued_invoice_is_seen(shop: Shop):
    _usage(shop.db, 1, DEC.start + 10, prefix="late")
    rate_pending(shop.db, shop.book)
    shop.sql(
        "UPDATE usage_charges SET invoice_id = :i WHERE invoice_id IS NULL", i=shop.issued["id"]
    )  # fmt: skip  (no trigger guards an unbilled charge)
    assert any("changed after it was issued" in p for p in shop.problems())
    assert invoice_drift(shop.db)[0]["status"] == "drift"


def test_a_deleted_invoice_is_seen(shop: Shop):
    for name in ("invoices_no_delete", "charges_billed_no_delete"):
        shop.sql(f"DROP TRIGGER {name}")
    shop.sql("DELETE FROM invoices")
    problems = shop.problems()
    invoice = shop.issued["id"]
    assert f"invoice {invoice} was sealed and is gone" in problems
    assert f"charges are billed to invoice {invoice}, which does not exist" in problems


def test_an_invoice_without_a_seal_is_seen(shop: Shop):
    shop.sql("INSERT INTO invoices SELECT 'inv_forged', 'TM-forged', tenant, currency, "
             "period_start + 1, period_end, issued_at, tax_rate, body FROM invoices")  # fmt: skip
    assert any("TM-forged (inv_forged) has no seal" in p for p in shop.problems())


def test_an_invoice_issued_while_the_seals_are_read_is_no_problem(shop: Shop):
    """Issuing goes on while `audit verify` or the console checks: an invoice that commits
    (with its seal) between the seals' read and the invoices' read is not 'not issued by
    TokenMill'."""
    _usage(shop.db, 2, DEC.start + 3600, prefix="d")
    issued: list[dict] = []

    def issue_once(conn, cursor, statement, *_):
        if not issued and statement.lstrip().startswith("SELECT") and "invoice_seals" in statement:
            issued.append(shop.close(DEC, now=DEC.end + 86400))

    event.listen(shop.db, "after_cursor_execute", issue_once)
    try:
        problems = shop.problems()
    finally:
        event.remove(shop.db, "after_cursor_execute", issue_once)
    assert len(issued) == 1 and problems == []


def test_an_invoice_sealed_while_the_audit_log_is_read_is_no_problem(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
):
    """Its seal is in the table before its audit record: the audit log is read first, so a
    record read always finds the seal (no 'sealed in audit record N, is gone')."""
    _usage(shop.db, 2, DEC.start + 3600, prefix="d")
    details, issued = shop.audit.details, []

    def an_issue_then_the_read(action: str):
        if not issued:
            issued.append(shop.close(DEC, now=DEC.end + 86400))
        return details(action)

    monkeypatch.setattr(shop.audit, "details", an_issue_then_the_read)
    assert shop.problems() == [] and len(issued) == 1


def test_invoices_from_before_seals_are_sealed_once_at_start(tmp_path: Path):
    db = make_engine(sqlite_url(tmp_path))
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(Path(tokenmill.store.db.__file__).parent / "migrations")
    )
    migrate(db)  # usage, charges and an invoice, written by today's code...
    _usage(db, 2, NOV.start + 60)
    book = PriceBook(db).load()
    rate_pending(db, book)
    Invoices(db, book).close(TENANT, NOV, now=DEC.end, grace_s=0, tax_rate=Decimal(0))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")  # ...in a data directory from before seals
    migrate(db)
    audit = AuditLog(db, KEY, [tmp_path / "audit-checkpoints.log"])
    integrity = Integrity(db, audit)
    assert any("not sealed yet" in p for p in integrity.check().problems())
    notes = integrity.at_start(Profile.FINANCE)
    assert "sealed 1 invoice(s) issued before invoices were sealed" in notes
    assert integrity.check().ok and integrity.at_start(Profile.FINANCE) == []
    (legacy,) = audit.details("invoice.sealed")
    assert legacy[1]["legacy"] is True
    # a seal emptied behind a dropped trigger is sealed again at start: the audit log shows it
    with db.begin() as conn:
        conn.execute(text("DROP TRIGGER invoice_seals_no_update"))
        conn.execute(text("DROP TRIGGER invoices_no_update"))
        conn.execute(text("UPDATE invoice_seals SET seal = NULL, mac = NULL"))
        conn.execute(text("UPDATE invoices SET body = json_set(body, '$.total', '0.00')"))
    integrity.at_start(Profile.SME)  # restores the triggers, seals the "legacy" row again
    problems = integrity.check().problems()
    assert problems == [f"invoice {legacy[1]['invoice']}'s seal is not the one audit record "
                        f"{legacy[0]} holds"]  # fmt: skip


def test_the_doctor_fails_every_profile_on_seals_and_triggers():
    for profile in Profile:
        facts = Facts(profile=profile, host="127.0.0.1", tls=True, pii_mode=PiiMode.MASK,
                      tenant_pii_modes={}, audit_ok=True, audit_reason=None,
                      audit_retention_days=365, seal_problems=["invoice X changed"],
                      trigger_problems=["database trigger t is missing"])  # fmt: skip
        status = {f.check: (f.status, f.detail) for f in examine(facts)}
        assert status["invoice-seals"] == ("fail", "invoice X changed")
        assert status["db-triggers"] == ("fail", "database trigger t is missing")


def test_a_discounted_invoice_reconciles_to_the_pico_and_an_edited_discount_does_not(
    tmp_path: Path,
):
    shop = Shop(tmp_path)
    shop.invoices.add_tier(None, 1, Decimal("2.5"))  # 2.5% off: amounts finer than 6 places
    _usage(shop.db, 3, NOV.start + 3600)
    issued = shop.close()
    assert any(x["kind"] == "discount" for x in issued["lines"])
    (drift,) = invoice_drift(shop.db)
    assert drift["status"] == "ok" and drift["total_expected"] == issued["total"]
    shop.sql("DROP TRIGGER invoices_no_update")
    discount = next(i for i, x in enumerate(issued["lines"]) if x["kind"] == "discount")
    shop.sql(f"UPDATE invoices SET body = json_set(body, '$.lines[{discount}].unit_price', '25%')")
    assert invoice_drift(shop.db)[0]["status"] == "drift"
    assert any("changed after it was issued" in p for p in shop.problems())


def test_the_triggers_checked_are_those_the_migrations_make(tmp_path: Path):
    db = _migrated(tmp_path)
    assert triggers.problems(db) == {}
    with db.connect() as conn:
        names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        assert sorted(n for (n,) in names) == sorted(t.name for t in triggers.SQLITE)
