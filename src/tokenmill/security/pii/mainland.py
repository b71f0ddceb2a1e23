"""Mainland China's numbers: resident IDs, mobiles, landlines, organisations' credit codes."""

import re

from tokenmill.security.pii.checksums import USCC_CHARS, cn_id_valid, uscc_valid
from tokenmill.security.pii.kinds import Kind
from tokenmill.security.pii.normalize import SEP, bare, digits, evenly_grouped
from tokenmill.security.pii.recognizer import recognizer


def _cn_id(value: str) -> bool:
    return evenly_grouped(value) and cn_id_valid(bare(value))


_PREFIX = r"(?:(?:\+|00)?86[ -]?)"  # +86, 0086 or 86, then maybe a space or "-"
_MOBILE_PREFIX = re.compile(_PREFIX, re.ASCII)


def _mobile(value: str) -> bool:
    """The number's own groups (the country code may be set apart differently)."""
    number = value[m.end() :] if (m := _MOBILE_PREFIX.match(value)) else value
    return evenly_grouped(number)


# Area codes without their trunk 0: 10 (Beijing), 2x, then 3xx-9xx; a local number of 7 or 8
# digits that does not start with 0 or 1. The 0 goes when dialled from abroad (+86 10 ...). Not
# the middle of a grouped number (`4167 0885 9355 5476`, a card with a typo): no digit, nor a
# placeholder's "]" (so that masking cannot uncover one), then " " or "-" before it.
_AREA = r"(?:10|2\d|[3-9]\d\d)"
_LANDLINE = (
    r"(?<![\d\]][ -])"
    rf"(?:(?:\+|00)86{SEP}?(?:\({_AREA}\)|{_AREA})|\(0{_AREA}\)|0{_AREA})"
    rf"{SEP}?[2-9]\d{{2,3}}{SEP}?\d{{4}}"
)
_USCC = f"[{USCC_CHARS}]"

RECOGNIZERS = (
    recognizer(Kind.CN_ID, "0-9", digits(18, r"[\dXx]"), "0-9Xx .-", (18, 35), _cn_id),
    recognizer(
        Kind.CN_MOBILE,
        "+018",
        rf"{_PREFIX}?1{SEP}?[3-9](?:{SEP}?\d){{9}}",
        "0-9+ .-",
        (11, len("+86 1 3 8 0 0 1 3 8 0 0 0")),
        _mobile,
    ),
    recognizer(Kind.CN_LANDLINE, "+0(", _LANDLINE, "0-9+() .-", (10, len("+86 (755) 8888 6666"))),
    recognizer(Kind.USCC, USCC_CHARS, f"{_USCC}{{18}}", USCC_CHARS, (18, 18), uscc_valid),
)
