"""Invoice rendering: canonical JSON, CSV a spreadsheet understands, a readable PDF."""

import copy
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from tokenmill.billing.invoice_pdf import InvoiceFonts, find_invoice_fonts, invoice_pdf
from tokenmill.billing.invoice_render import CSV_COLUMNS, invoice_csv, invoice_json

MICRO = Decimal("0.000001")
CLASSES = ("input", "cached_input", "output")
PRICES = {"input": Decimal("0.15"), "cached_input": Decimal("0.075"), "output": Decimal("0.60")}
MODELS = ("smollm2-135m", "smollm2-360m", "qwen2.5-0.5b", "llama-3.2-1b")


def make_invoice(
    n_usage: int = 3,
    *,
    tenant_name: str = "Acme Manufacturing Co.",
    adjustments: int = 1,
    tax_rate: str = "0.06",
    currency: str = "USD",
    notes: str | None = "Payment due within 30 days.",
) -> dict[str, Any]:
    """A self-consistent invoice, built the way the billing code does: micro-unit line
    amounts, then subtotal/tax/total rounded half-even to the currency's minor unit."""
    lines: list[dict[str, Any]] = []
    for i in range(n_usage + adjustments):
        model = MODELS[(i // 3) % len(MODELS)]
        token_class = CLASSES[i % 3]
        tokens = 1_234_567 * (i + 1) + 89
        price = PRICES[token_class]
        amount = (tokens * price / 1_000_000).quantize(MICRO, ROUND_HALF_EVEN)
        usage = i < n_usage
        lines.append(
            {
                "kind": "usage" if usage else "adjustment",
                "model": model,
                "token_class": token_class,
                "tokens": tokens,
                "unit_price": f"{price:.6f}",
                "unit": "per 1M tokens",
                "amount": f"{amount:.6f}",
                "price_rule": f"pr_{i:04d}",
                "description": f"{model} {token_class} tokens"
                if usage
                else "late usage for 2026-10 (invoice TM-2026-10-acme-1)",
            }
        )
    minor = Decimal(1) if currency == "JPY" else Decimal("0.01")
    subtotal = sum((Decimal(x["amount"]) for x in lines), Decimal(0)).quantize(minor)
    tax = (subtotal * Decimal(tax_rate)).quantize(minor, ROUND_HALF_EVEN)
    invoice: dict[str, Any] = {
        "id": "inv_3f2a9c0d1e2f",
        "number": "TM-2026-11-acme-1",
        "tenant": "acme",
        "tenant_name": tenant_name,
        "currency": currency,
        "period_start": "2026-11-01T00:00:00+00:00",
        "period_end": "2026-12-01T00:00:00+00:00",
        "issued_at": "2026-12-02T04:00:00+00:00",
        "lines": lines,
        "subtotal": str(subtotal),
        "tax_rate": tax_rate,
        "tax": str(tax),
        "total": str(subtotal + tax),
    }
    if notes is not None:
        invoice["notes"] = notes
    return invoice


def pdf_pages(blob: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(blob)).pages]


@pytest.fixture(scope="module")
def big_invoice() -> dict[str, Any]:
    return make_invoice(117, adjustments=3)


@pytest.fixture(scope="module")
def big_pdf(big_invoice: dict[str, Any]) -> bytes:
    return invoice_pdf(big_invoice)


def test_fixture_invoice_is_self_consistent() -> None:
    inv = make_invoice(5, adjustments=2)
    lines_sum = sum((Decimal(x["amount"]) for x in inv["lines"]), Decimal(0))
    assert Decimal(inv["subtotal"]) == lines_sum.quantize(Decimal("0.01"))
    assert Decimal(inv["total"]) == Decimal(inv["subtotal"]) + Decimal(inv["tax"])


# JSON ---------------------------------------------------------------------------------


def test_json_round_trips_canonically() -> None:
    inv = make_invoice(tenant_name="上海某某制造有限公司")
    blob = invoice_json(inv)
    assert json.loads(blob) == inv
    assert "上海某某制造有限公司".encode() in blob  # UTF-8, not \u escapes
    reordered = dict(reversed(list(inv.items())))
    assert invoice_json(reordered) == blob  # key order does not matter
    assert (
        blob == json.dumps(inv, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    )


@pytest.mark.parametrize(
    "spoil",
    [
        lambda inv: inv["lines"][0].__setitem__("amount", 0.1),
        lambda inv: inv.__setitem__("total", 0.2),
        lambda inv: inv["lines"][1].__setitem__("tokens", 1234.0),
        lambda inv: inv.__setitem__("extra", {"nested": [1, 2, 0.5]}),
    ],
    ids=["line-amount", "total", "tokens", "nested"],
)
def test_every_format_refuses_a_float(spoil: Any) -> None:
    inv = make_invoice()
    spoil(inv)
    for render in (invoice_json, invoice_csv, invoice_pdf):
        with pytest.raises(ValueError, match="float"):
            render(inv)


def test_money_must_be_a_decimal_string() -> None:
    inv = make_invoice()
    inv["lines"][0]["amount"] = "twelve"
    with pytest.raises(ValueError, match="amount"):
        invoice_csv(inv)
    with pytest.raises(ValueError, match="amount"):
        invoice_pdf(inv)


# CSV ----------------------------------------------------------------------------------


def test_csv_parses_back() -> None:
    inv = make_invoice(6, adjustments=2)
    rows = list(csv.DictReader(io.StringIO(invoice_csv(inv))))
    items = [r for r in rows if r["kind"] in ("usage", "adjustment")]
    summary = {r["kind"]: r for r in rows if r["kind"] in ("subtotal", "tax", "total")}
    assert len(rows) == len(inv["lines"]) + 3  # the blank separator row is skipped
    assert len(items) == len(inv["lines"])
    for row, line in zip(items, inv["lines"], strict=True):
        assert row["amount"] == line["amount"]
        assert row["unit_price"] == line["unit_price"]
        assert int(row["tokens"]) == line["tokens"]
        assert (row["model"], row["token_class"], row["kind"]) == (
            line["model"],
            line["token_class"],
            line["kind"],
        )
        assert (row["number"], row["tenant"], row["currency"]) == (
            "TM-2026-11-acme-1",
            "acme",
            "USD",
        )
    assert [summary[k]["amount"] for k in ("subtotal", "tax", "total")] == [
        inv["subtotal"],
        inv["tax"],
        inv["total"],
    ]
    assert summary["tax"]["unit_price"] == "0.06"
    assert summary["tax"]["description"] == "Tax 6% of subtotal"
    assert sum((Decimal(r["amount"]) for r in items), Decimal(0)).quantize(
        Decimal("0.01")
    ) == Decimal(summary["subtotal"]["amount"])


def test_csv_header_and_formula_guard() -> None:
    inv = make_invoice(1, adjustments=1, tenant_name="上海某某制造有限公司")
    inv["lines"][1]["description"] = '=HYPERLINK("http://evil","x")'
    inv["lines"][1]["amount"] = "-0.500000"  # a credit: numbers are never altered
    text = invoice_csv(inv)
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    assert rows[1]["description"] == '\'=HYPERLINK("http://evil","x")'
    assert rows[1]["amount"] == "-0.500000"


# PDF ----------------------------------------------------------------------------------


def test_pdf_is_readable_and_complete() -> None:
    inv = make_invoice(6, adjustments=2)
    blob = invoice_pdf(inv)
    assert blob.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(blob))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for needle in ("TokenMill", inv["number"], inv["tenant"], inv["tenant_name"], inv["total"]):
        assert needle in text
    for model in {line["model"] for line in inv["lines"]}:
        assert model in text
    assert "Adjustments" in text
    assert "Tax (6%)" in text
    assert "page 1 of 1" in text
    assert inv["notes"] in text
    assert reader.metadata is not None
    assert reader.metadata.get("/CreationDate") == "D:20261202040000Z"


def test_pdf_without_adjustments_or_notes() -> None:
    inv = make_invoice(3, adjustments=0, notes=None, tax_rate="0.0725")
    text = "\n".join(pdf_pages(invoice_pdf(inv)))
    assert "Adjustments" not in text
    assert "Notes" not in text
    assert "Tax (7.25%)" in text


def test_pdf_yen_invoice_has_no_minor_unit() -> None:
    inv = make_invoice(3, currency="JPY", tax_rate="0.10")
    inv["lines"] = [{**line, "unit_price": "22.500000"} for line in inv["lines"]]
    assert "." not in inv["total"]
    text = "\n".join(pdf_pages(invoice_pdf(inv)))
    assert "Amount (JPY)" in text
    assert "Tax (10%)" in text
    assert inv["total"] in text


def test_long_pdf_repeats_the_table_header(big_invoice: dict[str, Any], big_pdf: bytes) -> None:
    pages = pdf_pages(big_pdf)
    n = len(pages)
    assert len(big_invoice["lines"]) == 120
    assert n > 1
    for i, text in enumerate(pages, start=1):
        assert "Token class" in text, f"page {i} lacks the table header"
        assert f"page {i} of {n}" in text
    assert big_invoice["total"] in pages[-1]
    everything = "\n".join(pages)
    for line in big_invoice["lines"]:
        assert f"{line['tokens']:,}" in everything


def test_pdf_is_deterministic(big_invoice: dict[str, Any], big_pdf: bytes) -> None:
    assert invoice_pdf(copy.deepcopy(big_invoice)) == big_pdf
    small = make_invoice()
    assert invoice_pdf(small) == invoice_pdf(small)
    other = dict(small, issued_at="2026-12-03T04:00:00+00:00")
    assert invoice_pdf(other) != invoice_pdf(small)


def test_pdf_is_deterministic_across_processes() -> None:
    """Same bytes in a fresh interpreter with another hash seed (set ordering etc.)."""
    inv = make_invoice(10, tenant_name="Société Łódź 上海")
    script = (
        "import hashlib, json, sys\n"
        "from tokenmill.billing.invoice_pdf import invoice_pdf\n"
        "print(hashlib.sha256(invoice_pdf(json.load(sys.stdin))).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(inv),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            timeout=120,
        )
        digests.add(done.stdout.strip())
    assert digests == {hashlib.sha256(invoice_pdf(inv)).hexdigest()}


def test_non_latin_tenant_name() -> None:
    name = "上海某某制造有限公司"
    inv = make_invoice(tenant_name=name)
    blob = invoice_pdf(inv)
    text = "\n".join(pdf_pages(blob))
    fonts = find_invoice_fonts()
    if fonts.fallbacks:  # a CJK font is installed: the name shows as is
        assert name in text
    else:  # no CJK font: visible '?' per character, and the PDF says why
        assert "?" * len(name) in text
        assert "shown as '?'" in text
    # the document metadata keeps the exact name either way
    meta = PdfReader(io.BytesIO(blob)).metadata
    assert meta is not None
    assert name in str(meta.get("/Subject"))


def test_dejavu_covers_european_scripts() -> None:
    if find_invoice_fonts().regular is None:
        pytest.skip("no Unicode TTF on this machine")
    inv = make_invoice(tenant_name="Łódź Ελληνικά Москва")
    text = "\n".join(pdf_pages(invoice_pdf(inv)))
    assert "Łódź Ελληνικά Москва" in text
    assert "shown as '?'" not in text


def test_core_font_fallback_transliterates() -> None:
    """Without any TTF: Helvetica, Latin-1 kept, some letters transliterated, rest '?'."""
    inv = make_invoice(tenant_name="Łódź — Société 上海")
    inv["notes"] = "Net 30 “days”, €"
    text = "\n".join(pdf_pages(invoice_pdf(inv, fonts=InvoiceFonts())))
    assert "Lódz - Société ??" in text
    assert 'Net 30 "days", EUR' in text
    assert "shown as '?'" in text
    assert inv["total"] in text
