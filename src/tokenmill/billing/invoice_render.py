"""Render an invoice (a plain dict) as canonical JSON, CSV and PDF.

The invoice is the dict the billing code produces: money is always a decimal *string*
(``"0.185185"``; line amounts carry 6 decimals, ``subtotal``/``tax``/``total`` are already
rounded to the currency's minor unit), token counts are ints, timestamps are ISO 8601
strings with an offset. This module only *displays* those values: it never recomputes or
re-rounds money, and it refuses a ``float`` anywhere in the invoice (``ValueError``),
because a float there means some code path has already lost precision.

The PDF is `invoice_pdf.py`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tokenmill.core.money import decimal_string

__all__ = ["CSV_COLUMNS", "invoice_csv", "invoice_json"]

# ---------------------------------------------------------------------------------------
# shared checks


def reject_floats(value: Any, path: str = "invoice") -> None:
    """Raise ValueError if a float hides anywhere in ``value`` (dicts, lists, tuples)."""
    if isinstance(value, float):
        raise ValueError(f"{path} is a float ({value!r}); money must be a decimal string")
    if isinstance(value, Mapping):
        for key, item in value.items():
            reject_floats(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            reject_floats(item, f"{path}[{index}]")


def money_text(value: Any, field: str) -> str:
    """A money field, exactly as given, after checking it is a finite decimal string."""
    decimal_string(value, field)
    return str(value)


def token_count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an int, got {type(value).__name__}")
    return value


def line_items(invoice: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = invoice.get("lines", [])
    if not isinstance(lines, list | tuple) or not all(isinstance(x, Mapping) for x in lines):
        raise ValueError("invoice.lines must be a list of dicts")
    return list(lines)


def percent_text(rate: str) -> str:
    """``"0.06"`` -> ``"6%"``, ``"0.0725"`` -> ``"7.25%"``, ``"0"`` -> ``"0%"``."""
    pct = (Decimal(rate) * 100).normalize()
    return f"{pct:f}%"


# ---------------------------------------------------------------------------------------
# JSON


def invoice_json(invoice: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, compact separators, UTF-8 (not ASCII-escaped), no
    trailing newline. The same dict always gives the same bytes.

    Raises ValueError if any value anywhere is a float (money must be a decimal string);
    values JSON cannot represent (a ``Decimal``, a ``datetime``) raise ``TypeError``.
    """
    reject_floats(invoice)
    text = json.dumps(
        invoice, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")


# ---------------------------------------------------------------------------------------
# CSV

CSV_COLUMNS: tuple[str, ...] = (
    "number",
    "tenant",
    "currency",
    "period_start",
    "period_end",
    "kind",
    "model",
    "token_class",
    "tokens",
    "unit_price",
    "unit",
    "amount",
    "price_rule",
    "description",
)

_TEXT_COLUMNS = frozenset({"tenant", "model", "token_class", "unit", "price_rule", "description"})


def _csv_text(value: Any) -> str:
    """Text cells that a spreadsheet would take for a formula get a leading ``'``."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def invoice_csv(invoice: Mapping[str, Any]) -> str:
    """The invoice as CSV text (``csv`` module, ``excel`` dialect: comma, CRLF rows).

    Layout, one table with the header :data:`CSV_COLUMNS`:

    * one row per line item, in invoice order (``kind``: ``usage``, ``discount``, ``adjustment``;
      ``tokens`` an integer, ``unit_price``/``amount`` the decimal strings as given);
    * one empty row (``csv.DictReader`` and most tools skip it; in a spreadsheet it
      separates the items from the totals);
    * three summary rows whose ``kind`` is ``subtotal``, ``tax`` and ``total``, the value
      in ``amount``, and a readable label in ``description`` (``"Tax 6% of subtotal"``).
      The tax row also carries the rate in ``unit_price`` with ``unit`` = ``tax rate``.
      ``model``/``token_class``/``tokens``/``price_rule`` are empty there.

    Every row repeats number, tenant, currency and period so a filtered sheet stays
    self-explanatory. To sum line items, filter out the three summary kinds first.
    Free-text cells starting with ``= + - @`` get a leading ``'`` so that spreadsheets do
    not run them as formulas (numbers are never altered). The text is returned as a
    ``str``; write it with ``encoding="utf-8-sig"`` if Excel must detect UTF-8 (non-Latin
    tenant names), and with ``newline=""``.
    """
    reject_floats(invoice)
    common = {
        "number": str(invoice["number"]),
        "tenant": _csv_text(invoice["tenant"]),
        "currency": str(invoice["currency"]),
        "period_start": str(invoice["period_start"]),
        "period_end": str(invoice["period_end"]),
    }
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for i, line in enumerate(line_items(invoice)):
        where = f"lines[{i}]"
        row: dict[str, str] = dict(common)
        for column in ("kind", "model", "token_class", "unit", "price_rule", "description"):
            value = line.get(column, "")
            row[column] = _csv_text(value) if column in _TEXT_COLUMNS else str(value)
        row["tokens"] = str(token_count(line.get("tokens", 0), f"{where}.tokens"))
        row["unit_price"] = money_text(line["unit_price"], f"{where}.unit_price")
        row["amount"] = money_text(line["amount"], f"{where}.amount")
        writer.writerow(row)
    csv.writer(out).writerow([])  # a truly empty row, which DictReader skips
    tax_rate = money_text(invoice["tax_rate"], "tax_rate")
    summary = (
        ("subtotal", money_text(invoice["subtotal"], "subtotal"), "Subtotal", "", ""),
        ("tax", money_text(invoice["tax"], "tax"), f"Tax {percent_text(tax_rate)} of subtotal",
         tax_rate, "tax rate"),
        ("total", money_text(invoice["total"], "total"), "Total", "", ""),
    )  # fmt: skip
    for kind, amount, label, unit_price, unit in summary:
        writer.writerow(
            {
                **common,
                "kind": kind,
                "amount": amount,
                "description": label,
                "unit_price": unit_price,
                "unit": unit,
            }
        )
    return out.getvalue()
