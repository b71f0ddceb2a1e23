"""What the PII guard looks for and what it reports: kinds, modes, findings, and a tenant's list
of kinds read against the known ones."""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Found by a pattern (and a checksum where the format has one)."""

    CN_ID = "cn_id"
    CN_MOBILE = "cn_mobile"
    CN_LANDLINE = "cn_landline"
    BANK_CARD = "bank_card"
    USCC = "uscc"  # unified social credit code of a Chinese organisation
    PASSPORT = "passport"
    HK_ID = "hk_id"
    MO_ID = "mo_id"
    TW_ID = "tw_id"
    CN_TRAVEL_PERMIT = "cn_travel_permit"
    US_SSN = "us_ssn"
    IBAN = "iban"
    EMAIL = "email"
    IP = "ip"


class NerKind(StrEnum):
    """Found by Presidio's named-entity recognition (the optional `pii` extra), English only."""

    PERSON = "person"
    LOCATION = "location"
    ADDRESS = "address"


KNOWN: frozenset[str] = frozenset(Kind) | frozenset(NerKind)


class PiiMode(StrEnum):
    OFF = "off"
    LOG = "log"  # detect and report, forward unchanged
    MASK = "mask"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a Kind, a NerKind, or a Presidio entity type in lower case
    start: int
    end: int


def parse_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """The kinds named, or ValueError naming the unknown ones and the known."""
    wanted = frozenset(k.strip().lower() for k in kinds if k.strip())
    if unknown := wanted - KNOWN:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(sorted(KNOWN))}")
    if not wanted:
        raise ValueError("no PII kinds given; leave the setting unset for all of them")
    return wanted
