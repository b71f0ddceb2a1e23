"""The audit log's hash chain: every kind of tampering is detected and the first bad record
named (on a real SQLite store, tampered with by direct SQL as an intruder would)."""

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tokenmill.security.audit import AuditLog, record_hash
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ServerProcess

KEY = b"k" * 32


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    return engine


def _filled(db: Engine, n: int = 10) -> AuditLog:
    log = AuditLog(db, KEY)
    for i in range(n):
        log.append(f"admin-{i % 3}", "tenant.create", "ok", resource=f"tenant/t{i}",
                   origin="127.0.0.1", detail={"weight": i})  # fmt: skip
    return log


def _sql(db: Engine, statement: str, **params: object) -> None:
    with db.begin() as conn:
        conn.execute(text(statement), params)


def test_an_untouched_log_verifies(db: Engine):
    assert AuditLog(db, KEY).verify().ok  # empty
    log = _filled(db)
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 10
    records = list(log.records())
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(records))


def test_an_edited_record_is_named(db: Engine):
    log = _filled(db)
    _sql(db, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 4")
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 4 and verdict.checked == 3
    assert "does not match its hash" in str(verdict.reason)


def test_an_edit_that_rehashes_the_record_breaks_the_next_link(db: Engine):
    log = _filled(db)
    rec = next(r for r in log.records() if r["seq"] == 4)
    forged = {**rec, "actor": "someone-else"}
    _sql(db, "UPDATE audit_log SET actor = :a, hash = :h WHERE seq = 4",
         a="someone-else", h=record_hash(forged))  # fmt: skip
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 5
    assert "does not follow" in str(verdict.reason)


def test_a_deleted_record_is_named(db: Engine):
    log = _filled(db)
    _sql(db, "DELETE FROM audit_log WHERE seq = 6")
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 6 and "missing" in str(verdict.reason)


def test_an_inserted_record_is_caught(db: Engine):
    log = _filled(db)
    # make room after record 3 and slip a forged record in, correctly linked to record 3
    _sql(db, "UPDATE audit_log SET seq = seq + 1000 WHERE seq > 3")
    _sql(db, "UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000")
    third = next(r for r in log.records() if r["seq"] == 3)
    forged = {"seq": 4, "at": third["at"], "actor": "intruder", "on_behalf_of": None,
              "action": "key.create", "resource": "key/x", "outcome": "ok", "origin": None,
              "detail": {}, "prev_hash": third["hash"]}  # fmt: skip
    _forge(db, forged)
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 5  # the record after the forgery


def test_reordered_records_are_caught(db: Engine):
    log = _filled(db)
    _sql(db, "UPDATE audit_log SET seq = 0 WHERE seq = 7")
    _sql(db, "UPDATE audit_log SET seq = 7 WHERE seq = 8")
    _sql(db, "UPDATE audit_log SET seq = 8 WHERE seq = 0")
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 7


def test_truncation_is_caught_by_the_signed_head(db: Engine):
    log = _filled(db)
    _sql(db, "DELETE FROM audit_log WHERE seq > 7")
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 8 and "cut off" in str(verdict.reason)


def test_a_head_rewritten_without_the_key_is_caught(db: Engine):
    log = _filled(db)
    seventh = next(r for r in log.records() if r["seq"] == 7)
    _sql(db, "DELETE FROM audit_log WHERE seq > 7")
    _sql(db, "UPDATE audit_head SET seq = 7, hash = :h", h=seventh["hash"])
    verdict = log.verify()
    assert not verdict.ok and "signature" in str(verdict.reason)
    assert AuditLog(db, b"x" * 32).verify().ok is False  # the wrong key fails the head too


def test_records_forged_after_the_head_are_caught(db: Engine):
    log = _filled(db, 3)
    last = list(log.records())[-1]
    _forge(db, {**last, "seq": 4, "prev_hash": last["hash"], "actor": "intruder"})
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 4
    assert "follow the signed head" in str(verdict.reason)


def test_a_record_that_commits_while_the_chain_is_walked_is_not_a_cut(
    db: Engine, monkeypatch: pytest.MonkeyPatch
):
    """A live gateway appends while `verify` runs (CI once showed "records 60..60 were cut
    off" on the console's audit page): the head, read after the records, is then ahead."""
    log = _filled(db, 5)
    rows, appended = log._rows, []

    def rows_then_an_append(after_seq: int = 0, batch: int = 1000):
        yield from rows(after_seq, batch)
        if not appended:
            appended.append(log.append("admin", "key.create", "ok")["seq"])

    monkeypatch.setattr(log, "_rows", rows_then_an_append)
    verdict = log.verify()
    assert appended == [6] and verdict.ok and verdict.checked == 6


def _forge(db: Engine, fields: dict) -> None:
    """Insert a record as an intruder would: well formed, correctly hashed, no key."""
    row = {**fields, "detail": json.dumps(fields["detail"]), "hash": record_hash(fields)}
    _sql(db, "INSERT INTO audit_log VALUES (:seq, :at, :actor, :on_behalf_of, :action, "
             ":resource, :outcome, :origin, :detail, :prev_hash, :hash)", **row)  # fmt: skip


def test_a_reopened_log_appends_where_the_head_is(db: Engine):
    _filled(db, 5)
    again = AuditLog(db, KEY)  # a restart: nothing kept in memory
    assert again.append("admin-0", "key.revoke", "ok")["seq"] == 6
    assert again.verify().ok and again.verify().checked == 6


def _backdate(db: Engine, through_seq: int, days: int) -> None:
    """Age records as time would (their hashes cover `at`, so rehash and relink them all)."""
    log = AuditLog(db, KEY)
    prev = "0" * 64
    with db.begin() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
        for row in rows:
            fields = {**row, "detail": json.loads(row["detail"]), "prev_hash": prev}
            if row["seq"] <= through_seq:
                fields["at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
            fields["hash"] = record_hash(fields)
            conn.execute(text("UPDATE audit_log SET at = :at, prev_hash = :prev_hash, "
                              "hash = :hash WHERE seq = :seq"), fields)  # fmt: skip
            prev = fields["hash"]
        conn.execute(text("UPDATE audit_head SET hash = :h, mac = :m"),
                     {"h": prev, "m": log._mac(rows[-1]["seq"], prev)})  # fmt: skip


def test_retention_prunes_old_records_and_the_rest_still_verifies(db: Engine):
    log = _filled(db, 10)
    _backdate(db, through_seq=6, days=400)
    assert log.prune(datetime.now(UTC) - timedelta(days=365)) == 6
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 11  # records 7..10 and the pruning's own record
    last = list(log.records())[-1]
    assert last["action"] == "audit.pruned" and last["detail"]["through_seq"] == 6
    assert log.prune(datetime.now(UTC) - timedelta(days=365)) == 0


def test_after_pruning_deleting_the_first_kept_record_is_still_caught(db: Engine):
    log = _filled(db, 10)
    _backdate(db, through_seq=6, days=400)
    log.prune(datetime.now(UTC) - timedelta(days=365))
    _sql(db, "DELETE FROM audit_log WHERE seq = 7")
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 7


def test_retention_that_prunes_while_the_chain_is_walked_is_not_a_gap(
    db: Engine, monkeypatch: pytest.MonkeyPatch
):
    """The daily retention run deletes the records `verify` began at: it walks again from
    the new base instead of reporting them missing."""
    log = _filled(db, 10)
    _backdate(db, through_seq=6, days=400)
    rows, pruned = log._rows, []

    def a_prune_then_the_rows(after_seq: int = 0, batch: int = 1000):
        if not pruned:
            pruned.append(log.prune(datetime.now(UTC) - timedelta(days=365)))
        yield from rows(after_seq, batch)

    monkeypatch.setattr(log, "_rows", a_prune_then_the_rows)
    verdict = log.verify()
    assert pruned == [6] and verdict.ok and verdict.checked == 11


def test_a_forged_retention_base_is_caught(db: Engine):
    """An intruder deleting old records and moving the base up without the key."""
    log = _filled(db, 10)
    _sql(db, "DELETE FROM audit_log WHERE seq <= 4")
    _sql(db, "UPDATE audit_head SET base_seq = 4, base_hash = "
             "(SELECT prev_hash FROM audit_log WHERE seq = 5), base_mac = 'f00'")  # fmt: skip
    verdict = log.verify()
    assert not verdict.ok and "retention base" in (verdict.reason or "")


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        AuditLog(make_engine("sqlite://"), b"short")


def test_the_admin_surface_is_audited_and_verifiable(server: ServerProcess):
    server.admin("POST", "/admin/tenants", json={"name": "audited-tenant"})
    # From an address of its own (all of 127/8 is loopback): the first refusal of an address
    # in a window is audited one by one, the rest only in the window's summary.
    fresh_origin = httpx.HTTPTransport(local_address="127.0.0.37")
    with httpx.Client(transport=fresh_origin) as other:
        refused = other.post(server.url + "/admin/tenants", json={"name": "x"},
                             headers={"Authorization": "Bearer tm-wrong"})  # fmt: skip
    assert refused.status_code == 401
    tenant_key = server.new_tenant_key("audited-member")
    denied = httpx.get(
        server.url + "/admin/keys", headers={"Authorization": f"Bearer {tenant_key}"}
    )
    assert denied.status_code == 403
    records = server.audit_records()
    created = [r for r in records if r["resource"] == "/admin/tenants" and r["action"] ==
               "POST /admin/tenants"]  # fmt: skip
    assert {r["outcome"] for r in created} >= {"ok", "denied"}
    ok = next(r for r in created if r["outcome"] == "ok" and r["actor"].startswith("key:"))
    assert ok["on_behalf_of"] == "tenant:system" and ok["origin"] == "127.0.0.1"
    assert any(r["actor"] == "unauthenticated" and r["detail"]["status"] == 401
               and r["origin"] == "127.0.0.37" for r in created)  # fmt: skip
    member = [r for r in records if r["resource"] == "/admin/keys" and r["outcome"] == "denied"]
    assert any(r["on_behalf_of"] == "tenant:audited-member" for r in member)  # who was refused
    assert "tm-wrong" not in str(records) and tenant_key not in str(records)  # no secrets
    # reading the audit log is itself audited, and the chain holds
    assert any(r["action"] == "GET /admin/audit" for r in server.audit_records())
    verdict = server.admin("GET", "/admin/audit/verify")
    assert verdict["ok"] and verdict["checked"] >= len(records)


def test_cli_verify_reports_tampering(tmp_path: Path):
    srv = ServerProcess(tmp_path / "srv").start(default_model=False)
    try:
        srv.new_tenant_key("someone")  # a few admin actions to audit
        cmd = [sys.executable, "-m", "tokenmill", "audit", "verify"]
        good = subprocess.run(cmd, capture_output=True, text=True, env=srv.env, timeout=60)
        assert good.returncode == 0 and "audit log intact" in good.stdout
        export = [sys.executable, "-m", "tokenmill", "audit", "export"]
        lines = subprocess.run(export, capture_output=True, text=True, env=srv.env,
                               timeout=60, check=True).stdout.splitlines()  # fmt: skip
        seqs = [json.loads(line)["seq"] for line in lines]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 3
        _sql(
            make_engine(sqlite_url(srv.data_dir)), "UPDATE audit_log SET actor = 'x' WHERE seq = 2"
        )
        bad = subprocess.run(cmd, capture_output=True, text=True, env=srv.env, timeout=60)
        assert bad.returncode == 1 and "tampered with at record 2" in bad.stdout
    finally:
        srv.stop()
