"""Bank accounts: payment card numbers and IBANs."""

from tokenmill.security.pii.checksums import card_valid, iban_valid
from tokenmill.security.pii.kinds import Kind
from tokenmill.security.pii.normalize import SEP, bare, grouping
from tokenmill.security.pii.recognizer import recognizer


def _in_fours(groups: list[int]) -> bool:
    """As printed on cards and statements: fours (the last maybe shorter), or Amex's 4-6-5."""
    return (all(g == 4 for g in groups[:-1]) and groups[-1] <= 4) or groups == [4, 6, 5]


def _card(value: str) -> bool:
    groups = grouping(value)
    if groups is None or not (len(groups) == 1 or max(groups) == 1 or _in_fours(groups)):
        return False
    return card_valid(bare(value))


def _iban(value: str) -> bool:
    groups = grouping(value)
    return (
        groups is not None and (len(groups) == 1 or _in_fours(groups)) and iban_valid(bare(value))
    )


# a brand's first digits up front (a quick refusal of most other numbers), then 13-19 digits
_CARD = rf"(?=4|5{SEP}?[1-5]|2{SEP}?[2-7]|3{SEP}?[457]|6{SEP}?[0245])\d(?:{SEP}?\d){{12,18}}"

RECOGNIZERS = (
    recognizer(Kind.BANK_CARD, "2-6", _CARD, "0-9 .-", (13, 37), _card, shorter=True),
    # a country, 2 check digits, then up to 30 letters and digits, compact or in fours
    recognizer(
        Kind.IBAN,
        "A-Z",
        r"[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?",
        "A-Z0-9 -",
        (15, 34 + 8),
        _iban,
        shorter=True,
    ),
)
