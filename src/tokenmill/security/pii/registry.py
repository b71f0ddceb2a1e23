"""All recognizers, which of them a tenant's kinds select, and which kind an overlap takes."""

from collections.abc import Iterable
from functools import cache

from tokenmill.security.pii import accounts, documents, mainland, network
from tokenmill.security.pii.kinds import KNOWN, Kind
from tokenmill.security.pii.recognizer import Recognizer

RECOGNIZERS: tuple[Recognizer, ...] = (
    *mainland.RECOGNIZERS,
    *accounts.RECOGNIZERS,
    *documents.RECOGNIZERS,
    *network.RECOGNIZERS,
)

# Overlapping candidates make one finding over their union, so no fragment of a loser is left
# unmasked; its kind is the longest's, then the first of these: the more specific check wins
# (an 18-digit ID that passes Luhn is an ID; a dotted quad is an IP, whatever else it fits).
PRECEDENCE: tuple[Kind, ...] = (
    Kind.CN_ID,
    Kind.BANK_CARD,
    Kind.USCC,
    Kind.IP,
    Kind.CN_MOBILE,
    Kind.CN_LANDLINE,
    Kind.US_SSN,
    Kind.IBAN,
    Kind.TW_ID,
    Kind.HK_ID,
    Kind.MO_ID,
    Kind.PASSPORT,  # after a passport word, a permit's number is the passport's
    Kind.CN_TRAVEL_PERMIT,
    Kind.EMAIL,
)
RANK: dict[str, int] = {k: i for i, k in enumerate(PRECEDENCE)}


@cache
def _select(kinds: frozenset[str]) -> tuple[Recognizer, ...]:
    return tuple(r for r in RECOGNIZERS if r.kind in kinds)


def recognizers(kinds: Iterable[str] | None = None) -> tuple[Recognizer, ...]:
    """The recognizers of `kinds` (all when None); kinds found otherwise (Presidio's) have
    none, unknown ones are a ValueError."""
    if kinds is None:
        return RECOGNIZERS
    wanted = frozenset(kinds)
    if unknown := wanted - KNOWN:
        raise ValueError(f"unknown PII kinds: {sorted(unknown)}")
    return _select(wanted)
