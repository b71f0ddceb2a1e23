"""An invoice as a PDF a person can read (A4, fpdf2).

Fonts (PDF)
-----------
fpdf2's core fonts (Helvetica...) only cover Latin-1. :func:`find_invoice_fonts` looks in
the usual font folders (``/usr/share/fonts``, ``/usr/local/share/fonts``, ``~/.fonts``,
``~/.local/share/fonts``) for DejaVu Sans (regular + bold: Latin, Greek, Cyrillic and
more) and for a CJK font (Noto Sans CJK / Source Han Sans, WenQuanYi, Droid Sans
Fallback, AR PL UMing/UKai) that fpdf2 then uses as a fallback for glyphs DejaVu lacks.
Nothing is downloaded. When no TTF is found the PDF falls back to core Helvetica and
transliterates what it can (``Ł`` -> ``L``, ``é`` stays, ``"—"`` -> ``"-"``, ``€`` ->
``EUR``). Any character that no available font can draw (e.g. Chinese text when only
DejaVu is installed) is printed as ``?``, and the PDF then carries a one-line notice
saying so; the document metadata (title, subject) keeps the original text. JSON and CSV
always keep the text as is (UTF-8).

Determinism: the PDF's creation date is taken from ``issued_at`` and fpdf2 derives the
file ``/ID`` from the content, so the same invoice rendered with the same fonts and the
same fpdf2 version gives the same bytes.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout, TableCellFillMode, TableHeadingsDisplay, XPos, YPos
from fpdf.fonts import TTFFont

from tokenmill.billing.invoice_render import (
    line_items,
    money_text,
    percent_text,
    reject_floats,
    token_count,
)

__all__ = ["InvoiceFonts", "find_invoice_fonts", "invoice_pdf"]

# ---------------------------------------------------------------------------------------
# fonts

_FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".fonts",
    Path.home() / ".local/share/fonts",
)
_REGULAR_NAMES = ("DejaVuSans.ttf",)
_BOLD_NAMES = ("DejaVuSans-Bold.ttf",)
# Best first. Collections (.ttc) use face 0, which for Noto/Source Han CJK is the
# Japanese-preferred face: it still holds every Han glyph Chinese text needs.
_CJK_NAMES = (
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSansSC-Regular.ttf",
    "NotoSansCJK-Regular.ttc",
    "SourceHanSansSC-Regular.otf",
    "SourceHanSans-Regular.ttc",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "uming.ttc",
    "ukai.ttc",
)


@dataclass(frozen=True)
class InvoiceFonts:
    """Font files for the PDF. ``regular`` None means core Helvetica (Latin-1 only);
    ``bold`` None with a regular TTF means bold text uses the regular face."""

    regular: Path | None = None
    bold: Path | None = None
    fallbacks: tuple[Path, ...] = ()


def _font_index(dirs: Iterable[Path]) -> dict[str, Path]:
    """File name -> first path found, walking ``dirs`` in order (sorted, so stable)."""
    found: dict[str, Path] = {}
    for root in dirs:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                found.setdefault(name, Path(dirpath) / name)
    return found


@lru_cache(maxsize=1)
def find_invoice_fonts() -> InvoiceFonts:
    """The fonts this machine offers for invoices (looked up once per process)."""
    index = _font_index(_FONT_DIRS)
    regular = next((index[n] for n in _REGULAR_NAMES if n in index), None)
    bold = next((index[n] for n in _BOLD_NAMES if n in index), None) if regular else None
    cjk = next((index[n] for n in _CJK_NAMES if n in index), None)
    if regular is None and cjk is not None:
        return InvoiceFonts(regular=cjk)
    return InvoiceFonts(regular=regular, bold=bold, fallbacks=(cjk,) if cjk else ())


# Characters Latin-1 lacks but that have an obvious plain-text stand-in.
_TRANSLITERATE = str.maketrans(
    {
        "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d",  # Ł ł Đ đ
        "\u0126": "H", "\u0127": "h", "\u0131": "i", "\u1e9e": "SS",  # Ħ ħ dotless-i ẞ
        "\u0152": "OE", "\u0153": "oe", "\u013f": "L", "\u0140": "l",  # Œ œ Ŀ ŀ
        "\u2018": "'", "\u2019": "'", "\u201a": ",",  # single quotes
        "\u201c": '"', "\u201d": '"', "\u201e": '"',  # double quotes
        "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",  # dashes
        "\u2026": "...", "\u2022": "*", "\u20ac": "EUR", "\u2122": "(TM)",  # … • € ™
        "\u00a0": " ", "\u2009": " ", "\u202f": " ",  # no-break and thin spaces
    }
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# PDF

_MARGIN = 15.0
_BOTTOM = 18.0
_TABLE_FONT = 8.0
_TABLE_COLUMNS = ("Description", "Model", "Token class", "Tokens", "Unit price", "Amount")
# mm, summing to the 180 mm between the A4 margins
_TABLE_WIDTHS = (52.0, 32.0, 24.0, 24.0, 24.0, 24.0)
_TABLE_ALIGN = ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
_SECTION_TITLES = {"usage": "Usage", "adjustment": "Adjustments"}


class _InvoicePDF(FPDF):
    def __init__(self, fonts: InvoiceFonts, footer_left: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=_BOTTOM)
        self.alias_nb_pages("{nb}")
        self.unicode_ok = fonts.regular is not None
        self.replaced = False
        self._covered: frozenset[int] = frozenset()
        if fonts.regular is None:
            self.family, self.has_bold = "helvetica", True
        else:
            self.family = "invoice"
            self.add_font(self.family, "", fonts.regular)
            self.has_bold = fonts.bold is not None
            if fonts.bold is not None:
                self.add_font(self.family, "B", fonts.bold)
            covered = self._cmap(self.family)
            if fonts.bold is not None:
                covered &= self._cmap(self.family + "B")
            names = []
            for i, path in enumerate(fonts.fallbacks):
                name = f"fallback{i}"
                self.add_font(name, "", path)
                covered |= self._cmap(name)
                names.append(name)
            if names:
                self.set_fallback_fonts(names, exact_match=False)
            self._covered = frozenset(covered)
        self.footer_left = self.clean(footer_left)

    def _cmap(self, key: str) -> set[int]:
        font = self.fonts[key]
        return set(font.cmap) if isinstance(font, TTFFont) else set(range(256))

    # text that the fonts can draw -------------------------------------------------------

    def clean(self, text: str) -> str:
        """``text`` with every character the fonts cannot draw made visible as ``?``."""
        out: list[str] = []
        for ch in text:
            if ch in "\n\t":
                out.append(" " if ch == "\t" else ch)
            elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
                continue
            elif self.unicode_ok:
                if ord(ch) in self._covered:
                    out.append(ch)
                else:
                    out.append("?")
                    self.replaced = True
            else:
                out.append(self._latin1(ch))
        return "".join(out)

    def _latin1(self, ch: str) -> str:
        if ord(ch) < 256:
            return ch
        sub = ch.translate(_TRANSLITERATE)
        if sub != ch:
            return sub
        stripped = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
        )
        if stripped and all(ord(c) < 256 for c in stripped):
            return stripped
        self.replaced = True
        return "?"

    def style(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold and self.has_bold else "", size)

    # page furniture ---------------------------------------------------------------------

    def footer(self) -> None:
        self.set_y(-12)
        self.style(8)
        self.set_text_color(110)
        self.cell(0, 5, self.footer_left, align="L")
        # "{nb}" is only replaced at output, so right-aligning would leave a gap: start the
        # page counter left-aligned where a "page 888 of 888" would have to start.
        self.set_x(self.w - self.r_margin - self.get_string_width("page 888 of 888"))
        self.cell(0, 5, f"page {self.page_no()} of {{nb}}", align="L")
        self.set_text_color(0)

    def ensure_room(self, height: float) -> None:
        """Start a new page unless ``height`` mm still fit above the bottom margin."""
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()


def _when(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} is not an ISO 8601 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _zone(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _show_time(moment: datetime) -> str:
    """The timestamp as written (its own offset, not converted): date, then time unless
    it is midnight, then the zone."""
    text = moment.strftime("%Y-%m-%d")
    if moment.time() != datetime.min.time():
        text += moment.strftime(" %H:%M")
    return f"{text} {_zone(moment)}"


def _group_digits(tokens: int) -> str:
    return f"{tokens:,}"


def _sections(rows: Sequence[tuple[str, list[str]]]) -> Iterator[tuple[str, list[list[str]]]]:
    """Usage lines first, then adjustments, then any other kind (first-seen order)."""
    order: list[str] = ["usage", "adjustment"]
    for kind, _ in rows:
        if kind not in order:
            order.append(kind)
    for kind in order:
        chosen = [cells for k, cells in rows if k == kind]
        if chosen:
            title = _SECTION_TITLES.get(kind) or (kind.replace("_", " ").capitalize() or "Other")
            yield title, chosen


def invoice_pdf(invoice: Mapping[str, Any], *, fonts: InvoiceFonts | None = None) -> bytes:
    """The invoice as an A4 PDF.

    Page 1 starts with a header (TokenMill, invoice number and id, bill-to tenant name and
    id, billing period, issue date, currency); then the line items: usage lines, then
    adjustments (and any other kind) in their own titled sections. Each table continues
    over as many pages as needed and repeats its header row on each. Then the totals
    block (subtotal, tax with the rate as a percentage, total), the notes if any, and a
    footer on every page: invoice number on the left, ``page i of N`` on the right.
    Numbers are right-aligned; token counts get thousands separators, money strings are
    printed exactly as given. When every line has the same ``unit`` (``per 1M tokens``)
    it is named once in the unit-price heading, otherwise after each price. Timestamps
    are shown in the offset they carry (``period_end`` is exclusive, and the header says
    so).

    ``fonts`` defaults to :func:`find_invoice_fonts` (see the module docstring for what
    happens to characters no available font covers). Output is deterministic for a given
    invoice, font set and fpdf2 version: the creation date comes from ``issued_at``.
    Raises ValueError for a float anywhere, a money field that is not a decimal string,
    or an unparseable timestamp.
    """
    reject_floats(invoice)
    fonts = find_invoice_fonts() if fonts is None else fonts
    number = str(invoice["number"])
    currency = str(invoice["currency"])
    issued = _when(invoice["issued_at"], "issued_at")
    start = _when(invoice["period_start"], "period_start")
    end = _when(invoice["period_end"], "period_end")
    tenant = str(invoice["tenant"])
    tenant_name = str(invoice.get("tenant_name") or tenant)
    subtotal = money_text(invoice["subtotal"], "subtotal")
    tax_rate = money_text(invoice["tax_rate"], "tax_rate")
    tax = money_text(invoice["tax"], "tax")
    total = money_text(invoice["total"], "total")
    lines = line_items(invoice)
    units = {str(line.get("unit", "")) for line in lines}
    shared_unit = units.pop() if len(units) == 1 else None
    rows: list[tuple[str, list[str]]] = []  # (kind, cells) validated up front
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        price = money_text(line["unit_price"], f"{where}.unit_price")
        if shared_unit is None:
            price = f"{price} {line.get('unit', '')}".rstrip()
        rows.append(
            (
                str(line.get("kind", "")),
                [
                    str(line.get("description", "")),
                    str(line.get("model", "")),
                    str(line.get("token_class", "")).replace("_", " "),
                    _group_digits(token_count(line.get("tokens", 0), f"{where}.tokens")),
                    price,
                    money_text(line["amount"], f"{where}.amount"),
                ],
            )
        )

    pdf = _InvoicePDF(fonts, footer_left=f"TokenMill invoice {number}")
    pdf.set_creation_date(issued)
    pdf.set_title(f"Invoice {number}")
    pdf.set_subject(f"TokenMill invoice {number} for {tenant_name} ({tenant})")
    pdf.set_author("TokenMill")
    pdf.set_creator("TokenMill")
    pdf.set_lang("en")
    pdf.add_page()
    width = pdf.epw

    # header -----------------------------------------------------------------------------
    pdf.style(20, bold=True)
    pdf.cell(width / 2, 10, "TokenMill", align="L")
    pdf.style(16, bold=True)
    pdf.cell(width / 2, 10, "INVOICE", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_draw_color(160)
    pdf.line(pdf.l_margin, pdf.get_y() + 1, pdf.l_margin + width, pdf.get_y() + 1)
    pdf.ln(4)
    facts = (
        ("Invoice number", number),
        ("Invoice ID", str(invoice.get("id", ""))),
        ("Bill to", tenant_name),
        ("Tenant", tenant),
        ("Billing period", f"{_show_time(start)} to {_show_time(end)} (end exclusive)"),
        ("Issued", _show_time(issued)),
        ("Currency", currency),
    )
    for label, value in facts:
        pdf.style(9, bold=True)
        pdf.cell(32, 5, label)
        pdf.style(9)
        pdf.multi_cell(width - 32, 5, pdf.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    # line items -------------------------------------------------------------------------
    headings = list(_TABLE_COLUMNS)
    headings[4] = f"Unit price ({currency} {shared_unit or ''})".replace(" )", ")")
    headings[5] = f"Amount ({currency})"
    heading_style = FontFace(emphasis="BOLD" if pdf.has_bold else None, fill_color=(230, 230, 230))
    if not rows:
        pdf.style(9)
        pdf.cell(0, 6, "No line items.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for title, chosen in _sections(rows):
        pdf.ensure_room(30)  # title, header row and a first line stay together
        pdf.style(11, bold=True)
        pdf.cell(0, 7, pdf.clean(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.style(_TABLE_FONT)
        with pdf.table(
            col_widths=_TABLE_WIDTHS,
            width=width,
            text_align=_TABLE_ALIGN,
            headings_style=heading_style,
            repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            cell_fill_mode=TableCellFillMode.NONE,
            line_height=4.0,
            padding=(0.8, 1.2),
        ) as table:
            table.row([pdf.clean(h) for h in headings])
            for cells in chosen:
                table.row([pdf.clean(c) for c in cells])
        pdf.ln(4)

    # totals -----------------------------------------------------------------------------
    pdf.ensure_room(26)
    label_w, value_w = 45.0, 30.0
    left = pdf.l_margin + width - label_w - value_w
    for label, value, strong in (
        ("Subtotal", subtotal, False),
        (f"Tax ({percent_text(tax_rate)})", tax, False),
        (f"Total ({currency})", total, True),
    ):
        if strong:
            pdf.line(left, pdf.get_y() + 0.5, left + label_w + value_w, pdf.get_y() + 0.5)
            pdf.ln(1.5)
        pdf.set_x(left)
        pdf.style(11 if strong else 9, bold=strong)
        height = 6 if strong else 5
        pdf.cell(label_w, height, pdf.clean(label), align="L")
        pdf.cell(value_w, height, pdf.clean(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # notes ------------------------------------------------------------------------------
    notes = invoice.get("notes")
    if notes:
        pdf.ln(6)
        pdf.ensure_room(14)
        pdf.style(10, bold=True)
        pdf.cell(0, 6, "Notes", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.style(9)
        pdf.multi_cell(0, 4.5, pdf.clean(str(notes)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if pdf.replaced:
        pdf.ln(4)
        pdf.ensure_room(8)
        pdf.style(7)
        pdf.set_text_color(110)
        pdf.multi_cell(
            0,
            3.5,
            "Some characters could not be displayed with the fonts available and are shown "
            "as '?'. The JSON and CSV versions of this invoice hold the exact text.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_text_color(0)
    return bytes(pdf.output())
