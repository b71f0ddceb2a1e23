"""PII content guard: Chinese resident IDs, mobiles, landlines and organisation codes; bank
cards and IBANs; passports, Hong Kong / Macau / Taiwan IDs, travel permits and US SSNs; emails
and IP addresses; and, with the optional `pii` extra, names and places (English only).

Text is folded (full-width forms to ASCII, one character for one, so spans stay put); the
recognizers (`recognizer.py`, one module per family) find candidates, with check characters
where the format has one and a keyword where the format alone says too little; overlapping
candidates become one finding; masking replaces each with a placeholder such as [CN_ID].
`pii_stream.StreamMasker` does the same to streamed text, chunk by chunk.
"""

from tokenmill.security.pii.checksums import card_valid, cn_id_valid, luhn_valid
from tokenmill.security.pii.detect import (
    Verdict,
    detect,
    guard,
    mask,
    placeholder,
    redact,
    resolve,
)
from tokenmill.security.pii.kinds import KNOWN, Finding, Kind, NerKind, PiiMode, parse_kinds
from tokenmill.security.pii.normalize import fold
from tokenmill.security.pii.presidio import check_available, presidio_findings
from tokenmill.security.pii.recognizer import Recognizer
from tokenmill.security.pii.registry import RECOGNIZERS, recognizers
from tokenmill.security.pii.scan import candidates
from tokenmill.security.pii.scoring import Score, score, score_table

__all__ = [
    "KNOWN",
    "RECOGNIZERS",
    "Finding",
    "Kind",
    "NerKind",
    "PiiMode",
    "Recognizer",
    "Score",
    "Verdict",
    "candidates",
    "card_valid",
    "check_available",
    "cn_id_valid",
    "detect",
    "fold",
    "guard",
    "luhn_valid",
    "mask",
    "parse_kinds",
    "placeholder",
    "presidio_findings",
    "recognizers",
    "redact",
    "resolve",
    "score",
    "score_table",
]
