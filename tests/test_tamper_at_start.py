"""Issue 14's acceptance, on real servers: a rollback to an older signed head, a full wipe, a
dropped trigger and an `INSERT OR REPLACE` on an invoice are each refused at start under
`finance`, and reported by `tokenmill audit verify`, `doctor` and `reconcile` otherwise."""

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tokenmill.billing.invoices import Period
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.store.db import make_engine, sqlite_url
from tokenmill.testing import ServerProcess, TlsFiles

REPLACE = (
    "INSERT OR REPLACE INTO invoices SELECT id, number, tenant, currency, period_start, "
    "period_end, issued_at, tax_rate, json_set(body, '$.total', '0.00') FROM invoices"
)


def _two_months_ago() -> Period:
    now = datetime.now(UTC)
    month = now.year * 12 + now.month - 1 - 2
    return Period.month(f"{month // 12}-{month % 12 + 1:02d}")


def _sql(data_dir: Path, *statements: str, **params: object) -> None:
    db = make_engine(sqlite_url(data_dir))
    with db.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)
    db.dispose()


def _head(db: Engine) -> dict:
    with db.connect() as conn:
        return dict(conn.execute(text("SELECT seq, hash, mac FROM audit_head")).mappings().one())


def _with_an_invoice(srv: ServerProcess) -> dict:
    """A tenant with usage two months back (its grace is over), invoiced through the API."""
    period = _two_months_ago()
    srv.admin("POST", "/admin/tenants", json={"name": "bank-desk"})
    record = UsageRecord("r-1", period.start + 60, "bank-desk", "key_x", "m", "m", "r0",
                         "chat", False, 1_000_000, 0, 500_000, None, 1.0, 200, "ok", "stop",
                         "engine")  # fmt: skip
    insert_records(make_engine(sqlite_url(srv.data_dir)), [record])
    body = {"tenant": "bank-desk", "period": period.label, "tax_rate": "0.06"}
    (invoice,) = srv.admin("POST", "/admin/invoices/close", json=body)["data"]
    assert invoice["total"] != "0.00"
    return invoice


def test_finance_refuses_to_start_on_each_tampering(tmp_path: Path, tls_files: TlsFiles):
    env = {"TOKENMILL_PROFILE": "finance"}
    base = ServerProcess(tmp_path / "bank", tls=tls_files, extra_env=env)
    base.start(timeout=60, default_model=False).stop()
    saved = _head(make_engine(sqlite_url(base.data_dir)))  # an older signed head, kept
    base.start(timeout=60, default_model=False)
    _with_an_invoice(base)
    base.stop()

    def copy(name: str) -> ServerProcess:
        shutil.copytree(base.data_dir, tmp_path / name)
        return ServerProcess(tmp_path / name, tls=tls_files, extra_env=env)

    rolled, wiped, dropped, replaced = (copy(n) for n in ("rolled", "wiped", "dropped", "repl"))
    _sql(rolled.data_dir, "DELETE FROM audit_log WHERE seq > :seq",
         "UPDATE audit_head SET seq = :seq, hash = :hash, mac = :mac", **saved)  # fmt: skip
    _sql(wiped.data_dir, "DELETE FROM audit_log", "DELETE FROM audit_head")
    _sql(dropped.data_dir, "DROP TRIGGER invoices_no_update",
         "UPDATE invoices SET body = json_set(body, '$.total', '0.00')")  # fmt: skip
    _sql(replaced.data_dir, "DROP TRIGGER invoices_no_replace", REPLACE)
    _sql(replaced.data_dir, next(  # and the trigger put back, as it was
        line for line in _triggers(base.data_dir) if "invoices_no_replace" in line))  # fmt: skip
    cases = [
        (rolled, "the log was rolled back"),
        (wiped, "the log was wiped"),
        (dropped, "triggers that keep invoices immutable are not in place: invoices_no_update"),
        (replaced, "changed after it was issued"),
    ]
    for srv, expected in cases:
        with pytest.raises(RuntimeError, match=expected) as refused:
            srv.start(timeout=60, default_model=False)
        assert "finance profile will not start on it" in str(refused.value)


def _triggers(data_dir: Path) -> list[str]:
    db = make_engine(sqlite_url(data_dir))
    with db.connect() as conn:
        return [
            r[0] for r in conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'trigger'"))
        ]


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenmill", *args], env=srv.env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_verify_doctor_and_reconcile_report_a_replaced_invoice(tmp_path: Path):
    srv = ServerProcess(tmp_path / "shop").start(timeout=60, default_model=False)
    try:
        issued = _with_an_invoice(srv)
        assert _cli(srv, "audit", "verify").returncode == 0
        assert _cli(srv, "reconcile").returncode == 0
        _sql(srv.data_dir, "DROP TRIGGER invoices_no_replace", REPLACE)
        verify = _cli(srv, "audit", "verify")
        assert verify.returncode == 1
        assert "changed after it was issued" in verify.stdout
        assert "invoices_no_replace is missing" in verify.stdout
        doctor = _cli(srv, "doctor", "--json")
        findings = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
        assert doctor.returncode == 1
        assert findings["invoice-seals"]["status"] == "fail"
        assert findings["db-triggers"]["status"] == "fail"
        reconcile = _cli(srv, "reconcile", "--json")
        (invoice,) = json.loads(reconcile.stdout)["invoices"]
        assert reconcile.returncode == 1 and invoice["status"] == "drift"
        assert (invoice["total"], invoice["total_expected"]) == ("0.00", issued["total"])
    finally:
        srv.stop()
    srv.start(timeout=60, default_model=False)  # sme: the trigger is put back, and audited
    try:
        logged = (srv.data_dir / "logs" / "tokenmill.log").read_text()
        assert "database triggers restored: invoices_no_replace (missing)" in logged
        assert any(r["action"] == "store.triggers_restored" for r in srv.audit_records())
        verify = _cli(srv, "audit", "verify")
        assert verify.returncode == 1 and "invoices_no_replace" not in verify.stdout
        assert "changed after it was issued" in verify.stdout  # the edit itself stays seen
    finally:
        srv.stop()
