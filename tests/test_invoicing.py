"""Billing through the real server: rated real usage in the KPIs, a closed month invoiced and
exported as JSON, CSV and PDF, and no way to change an issued invoice."""

import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from tokenmill.billing.invoices import Period
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records
from tokenmill.store.db import make_engine, sqlite_url
from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"


def _months_ago(n: int) -> Period:
    now = datetime.now(UTC)
    month = (now.year * 12 + now.month - 1) - n
    return Period.month(f"{month // 12}-{month % 12 + 1:02d}")


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rates(server: ServerProcess) -> dict[str, Decimal]:
    rules = server.admin("GET", "/admin/prices")["data"]
    return {
        r["token_class"]: Decimal(r["price_per_1m"])
        for r in rules
        if r["model"] == MODEL and r["tenant"] is None and r["book"] == "default"
    }


def test_real_usage_is_rated_into_the_kpis_exactly(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    for _ in range(2):
        httpx.post(
            server.url + "/v1/chat/completions",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
        ).raise_for_status()
    (usage,) = server.tenant_usage(tenant, 2)
    rate = _rates(server)
    expected = (
        Decimal(usage["prompt_tokens"] - usage["cached_tokens"]) * rate["input"]
        + Decimal(usage["cached_tokens"]) * rate["cached_input"]
        + Decimal(usage["completion_tokens"]) * rate["output"]
    ) / 10**6
    report = json.loads(_cli(server, "report", "--days", "2", "--top", "1000", "--json").stdout)
    mine = next(t for t in report["top_tenants"] if t["tenant"] == tenant)
    assert Decimal(mine["revenue"]) == expected.quantize(Decimal("0.000001"))


@pytest.fixture
def closed_month(server: ServerProcess, tenant_key) -> tuple[str, dict]:
    """Two months back (its grace is over whatever today is), with usage put straight into
    the server's ledger as late-arriving records would be."""
    tenant, _ = tenant_key
    period = _months_ago(2)
    records = [
        UsageRecord(
            f"{tenant}-{i}",
            period.start + 3600 * (i + 1),
            tenant,
            "key_x",
            MODEL,
            MODEL,
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
        for i in range(3)
    ]
    insert_records(make_engine(sqlite_url(server.data_dir)), records)
    done = _cli(
        server,
        "invoices",
        "close",
        "--tenant",
        tenant,
        "--period",
        period.label,
        "--tax-rate",
        "0.06",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    (invoice,) = json.loads(done.stdout)
    return tenant, invoice


def test_a_closed_month_is_invoiced_exactly(closed_month):
    _, invoice = closed_month
    lines = {x["token_class"]: x for x in invoice["lines"]}
    # 6M prompt tokens (0.75M cached), 1.5M output, at 0.02 / 0.002 / 0.04 per 1M
    assert {c: (x["tokens"], x["amount"]) for c, x in lines.items()} == {
        "input": (5_250_000, "0.105000"),
        "cached_input": (750_000, "0.001500"),
        "output": (1_500_000, "0.060000"),
    }
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("0.17", "0.01", "0.18")


def test_an_invoice_exports_as_json_csv_and_a_readable_pdf(server, closed_month, tmp_path):
    tenant, invoice = closed_month
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = f"{server.url}/admin/invoices/{invoice['id']}"
    assert httpx.get(url, headers=auth).json() == invoice
    csv_text = httpx.get(url, params={"format": "csv"}, headers=auth).text
    assert "0.105000" in csv_text and invoice["number"] in csv_text
    out = tmp_path / "invoice.pdf"
    shown = _cli(server, "invoices", "show", invoice["id"], "--format", "pdf", "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    pdf_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(out.read_bytes())).pages)
    assert invoice["number"] in pdf_text and invoice["total"] in pdf_text and tenant in pdf_text


def test_an_issued_invoice_cannot_be_changed(server: ServerProcess, closed_month):
    tenant, invoice = closed_month
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = f"{server.url}/admin/invoices/{invoice['id']}"
    assert httpx.patch(url, headers=auth, json={"total": "0"}).status_code == 405
    assert httpx.delete(url, headers=auth).status_code == 405
    again = httpx.post(
        server.url + "/admin/invoices/close",
        headers=auth,
        json={"tenant": tenant, "period": _months_ago(2).label},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "invoice_exists"
    with (
        pytest.raises(DatabaseError, match="immutable"),
        make_engine(sqlite_url(server.data_dir)).begin() as conn,
    ):
        conn.execute(text("UPDATE invoices SET body = '{}' WHERE id = :id"), {"id": invoice["id"]})
    assert httpx.get(url, headers=auth).json() == invoice
    assert any(r["detail"].get("event") == "invoice.closed" for r in server.audit_records())


def test_the_current_month_cannot_be_closed_early(server: ServerProcess, tenant_key):
    tenant, _ = tenant_key
    now = datetime.now(UTC).strftime("%Y-%m")
    early = httpx.post(
        server.url + "/admin/invoices/close",
        json={"tenant": tenant, "period": now},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "period_open"
    assert time.time() < Period.month(now).end
