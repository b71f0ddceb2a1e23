"""Drill: tamper with the audit log and an issued invoice the ways issue 14 found open.

A real `tokenmill up` (no model) gets an invoiced tenant and a few audited admin requests,
then stops. Each tampering is done, by direct SQL or file edits as an intruder with the
database would, on its own copy of that data directory:

- rollback: an older signed head (saved earlier) restored, the newer records deleted
- wipe: every audit record and the head deleted
- duplicate key: a record's stored `detail` given a duplicate key (SQL and Python read two values)
- checkpoints deleted: the checkpoint file removed
- dropped trigger: `DROP TRIGGER invoices_no_update`, then the invoice's total set to 0.00
- insert or replace: refused by the trigger; then around it (trigger dropped, row replaced
  with a 0.00 total, trigger recreated as it was)

For each, a `finance` server (TLS) must refuse to start, and on an `sme` server
`tokenmill audit verify`, `doctor` and (for invoices) `reconcile` must report it. Then the
cost of checkpointing: audit appends and `verify` with and without the checkpoint file.

    .venv/bin/python benchmarks/drills/audit_tamper.py

Prints each case's findings and one JSON object; exits 1 if any tampering went unseen.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme

from tokenmill.billing.invoices import Period
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.security.audit import AuditLog
from tokenmill.security.audit_checkpoints import CheckpointFile
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ServerProcess, TlsFiles

REPLACE = (
    "INSERT OR REPLACE INTO invoices SELECT id, number, tenant, currency, period_start, "
    "period_end, issued_at, tax_rate, json_set(body, '$.total', '0.00') FROM invoices"
)


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "tokenmill.db", isolation_level=None)


def _tls(directory: Path) -> TlsFiles:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert = ca.issue_cert("127.0.0.1", "localhost")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(directory / "server.pem"), append=True)
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    return TlsFiles(directory / "server.pem", directory / "server.key", directory / "ca.pem")


def _prepare(base: Path) -> dict[str, Any]:
    """A data directory with audited admin work and an issued invoice; an older head saved."""
    srv = ServerProcess(base).start(timeout=60, default_model=False)
    srv.admin("POST", "/admin/tenants", json={"name": "bank-desk"})
    srv.stop()
    with _db(base) as conn:
        saved = conn.execute("SELECT seq, hash, mac FROM audit_head").fetchone()
    srv.start(timeout=60, default_model=False)
    now = datetime.now(UTC)
    month = now.year * 12 + now.month - 1 - 2  # two months back: its grace is over
    period = Period.month(f"{month // 12}-{month % 12 + 1:02d}")
    record = UsageRecord("r-1", period.start + 60, "bank-desk", "key_x", "m", "m", "r0",
                         "chat", False, 1_000_000, 0, 500_000, None, 1.0, 200, "ok", "stop",
                         "engine")  # fmt: skip
    insert_records(make_engine(sqlite_url(base)), [record])
    body = {"tenant": "bank-desk", "period": period.label, "tax_rate": "0.06"}
    (invoice,) = srv.admin("POST", "/admin/invoices/close", json=body)["data"]
    srv.stop()
    return {"saved_head": saved, "invoice": invoice}


def _rollback(d: Path, ctx: dict[str, Any]) -> None:
    seq, digest, mac = ctx["saved_head"]
    with _db(d) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq > ?", (seq,))
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?, mac = ?", (seq, digest, mac))


def _wipe(d: Path, _: dict[str, Any]) -> None:
    with _db(d) as conn:
        conn.execute("DELETE FROM audit_log")
        conn.execute("DELETE FROM audit_head")


def _duplicate_key(d: Path, _: dict[str, Any]) -> None:
    with _db(d) as conn:
        seq, raw = conn.execute(
            "SELECT seq, detail FROM audit_log WHERE detail LIKE '{\"status\": %' LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE audit_log SET detail = ? WHERE seq = ?", ('{"status": 999, ' + raw[1:], seq)
        )


def _checkpoints_deleted(d: Path, _: dict[str, Any]) -> None:
    (d / "audit-checkpoints.log").unlink()


def _dropped_trigger(d: Path, _: dict[str, Any]) -> None:
    with _db(d) as conn:
        conn.execute("DROP TRIGGER invoices_no_update")
        conn.execute("UPDATE invoices SET body = json_set(body, '$.total', '0.00')")


def _insert_or_replace(d: Path, _: dict[str, Any]) -> None:
    with _db(d) as conn:
        try:
            conn.execute(REPLACE)
            raise SystemExit("INSERT OR REPLACE on an invoice was not refused")
        except sqlite3.IntegrityError:
            pass
        create = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'invoices_no_replace'"
        ).fetchone()[0]
        conn.execute("DROP TRIGGER invoices_no_replace")
        conn.execute(REPLACE)
        conn.execute(create)  # put back as it was: only the seal can tell now


CASES: dict[str, tuple[Callable[[Path, dict[str, Any]], None], bool]] = {
    "rollback to an older signed head": (_rollback, False),
    "full wipe of the audit log": (_wipe, False),
    "detail with a duplicate key": (_duplicate_key, False),
    "checkpoint file deleted": (_checkpoints_deleted, False),
    "DROP TRIGGER + UPDATE on an invoice": (_dropped_trigger, True),
    "INSERT OR REPLACE on an invoice": (_insert_or_replace, True),
}


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**srv.env, "COLUMNS": "1000"}  # one line per message
    return subprocess.run([sys.executable, "-m", "tokenmill", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _finance(d: Path, tls: TlsFiles) -> str | None:
    """Why a finance start was refused (None: it started)."""
    srv = ServerProcess(d, tls=tls, extra_env={"TOKENMILL_PROFILE": "finance"})
    try:
        srv.start(timeout=60, default_model=False)
    except RuntimeError as exc:
        lines = [x for x in str(exc).splitlines() if "RuntimeError" in x]
        return lines[-1].split("RuntimeError: ", 1)[-1] if lines else str(exc)[-300:]
    srv.stop()
    return None


def _sme(d: Path, invoices: bool) -> dict[str, Any]:
    srv = ServerProcess(d).start(timeout=60, default_model=False)
    try:
        verify = _cli(srv, "audit", "verify")
        doctor = json.loads(_cli(srv, "doctor", "--json").stdout)
        failed = [f"{f['check']}: {f['detail']}" for f in doctor["findings"]
                  if f["status"] == "fail" and f["check"] != "tls"]  # fmt: skip
        out: dict[str, Any] = {
            "verify_rc": verify.returncode,
            "verify": " | ".join(verify.stdout.strip().split("\n")),
            "doctor_failed": failed,
        }
        if invoices:
            rec = json.loads(_cli(srv, "reconcile", "--json").stdout)["invoices"][0]
            out["reconcile"] = {k: rec[k] for k in ("status", "total", "total_expected")}
    finally:
        srv.stop()
    return out


def _cost(directory: Path, n: int = 1000, rounds: int = 3) -> dict[str, float]:
    """Audit appends and a full verify, without and with a checkpoint file: the best of a few
    interleaved rounds (the machine is shared)."""
    best: dict[str, float] = {}
    for r in range(rounds):
        for label in ("plain", "checkpointed"):
            d = directory / f"{label}-{r}"
            d.mkdir(parents=True)
            engine = make_engine(sqlite_url(d))
            migrate(engine)
            log = AuditLog(engine, b"k" * 32, [d / "cp.log"] if label == "checkpointed" else [])
            log.start_checkpoints()
            t0 = time.perf_counter()
            for i in range(n):
                log.append("key:drill", "POST /admin/keys", "ok", detail={"status": 201, "i": i})
            append = (time.perf_counter() - t0) / n * 1e6
            t0 = time.perf_counter()
            assert log.verify().ok
            verify = (time.perf_counter() - t0) * 1e3
            for key, value in ((f"append_us_{label}", append), (f"verify_ms_{label}", verify)):
                best[key] = round(min(best.get(key, value), value), 1)
            if label == "checkpointed":
                best["checkpoint_bytes_per_record"] = round(
                    (d / "cp.log").stat().st_size / (n + 1), 1
                )
            engine.dispose()
    sign = AuditLog(make_engine("sqlite://"), b"k" * 32).sign
    points = CheckpointFile(directory / "alone.log", sign, "alone.log")
    t0 = time.perf_counter()
    for i in range(n):  # the checkpoint's own share of an append, without the database
        points.append(i + 1, "0" * 64, datetime.now(UTC).isoformat())
    best["checkpoint_write_us"] = round((time.perf_counter() - t0) / n * 1e6, 1)
    best["records"] = n
    return best


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="tokenmill-audit-drill-"))
    (root / "pki").mkdir()
    tls = _tls(root / "pki")
    ctx = _prepare(root / "base")
    results: dict[str, Any] = {}
    unseen = []
    for name, (tamper, invoices) in CASES.items():
        d = root / name.split()[0].lower().replace("+", "")
        shutil.copytree(root / "base", d, ignore=shutil.ignore_patterns("logs", "*.out"))
        tamper(d, ctx)
        refused = _finance(d, tls)
        seen = _sme(d, invoices)
        results[name] = {"finance_refused": refused, **seen}
        if refused is None or seen["verify_rc"] != 1 or not seen["doctor_failed"]:
            unseen.append(name)
        if invoices and seen["reconcile"]["status"] != "drift":
            unseen.append(f"{name} (reconcile)")
        print(f"\n## {name}\n  finance start: {'REFUSED: ' + refused if refused else 'STARTED'}")
        print(f"  audit verify (exit {seen['verify_rc']}): {seen['verify']}")
        print(f"  doctor fails: {seen['doctor_failed']}")
        if invoices:
            print(f"  reconcile: {seen['reconcile']}")
    results["cost"] = _cost(root / "cost")
    print(f"\n## cost\n  {results['cost']}")
    results["unseen"] = unseen
    print(json.dumps(results, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    return 1 if unseen else 0


if __name__ == "__main__":
    sys.exit(main())
