"""Identity documents: passports, Hong Kong / Macau / Taiwan identity cards, the mainland's
travel permits, US social security numbers. A format that plain numbers share (9 digits, 8
digits) counts only right after a word that names the document (`护照号码`, `SSN`)."""

from tokenmill.security.pii.checksums import hk_id_valid, ssn_valid, tw_id_valid
from tokenmill.security.pii.kinds import Kind
from tokenmill.security.pii.normalize import bare, grouping
from tokenmill.security.pii.recognizer import context, recognizer

_PASSPORT = context(
    "passport", "护照", "護照", "reisepass", "passeport", "pasaporte", "passaporto", "旅券", "여권"
)
_HONG_KONG = context("hkid", "hong kong", "hongkong", "香港", "身份證")
_MACAU = context("macau", "macao", "澳门", "澳門")
_TAIWAN_PERMIT = context("台胞证", "台胞證", "通行证", "通行證", "travel permit", "mtp")
_SSN = context("ssn", "social security", "社会安全号", "社會安全號", "社安号")


def _foreign_passport(value: str) -> bool:
    """Digits among the letters (US and UK: 9 digits; Germany: C01X00T47): not a word in
    capitals (`PASSPORT NUMBER: ...`)."""
    return not value.isalpha()


def _hk_id(value: str) -> bool:
    return hk_id_valid(bare(value))


def _ssn(value: str) -> bool:
    groups = grouping(value)
    return groups in ([9], [3, 2, 4]) and ssn_valid(bare(value))


RECOGNIZERS = (
    # China: E + 8 digits, E + letter + 7 digits (since 2019), G + 8 digits (before 2012)
    recognizer(Kind.PASSPORT, "EG", r"E(?:[A-Z]\d{7}|\d{8})|G\d{8}", "A-Z0-9", (9, 9)),
    recognizer(
        Kind.PASSPORT,
        "A-Z0-9",
        "[A-Z0-9]{6,9}",
        "A-Z0-9",
        (6, 9),
        _foreign_passport,
        after=_PASSPORT,
    ),
    # Hong Kong: 1-2 letters, 6 digits, a check character in brackets (bare after a keyword)
    recognizer(Kind.HK_ID, "A-Z", r"[A-Z]{1,2}\d{6}\([0-9A]\)", "A-Z0-9()", (10, 11), _hk_id),
    recognizer(
        Kind.HK_ID, "A-Z", r"[A-Z]{1,2}\d{6}[0-9A]", "A-Z0-9", (8, 9), _hk_id, after=_HONG_KONG
    ),
    # Macau: 1, 5 or 7, 6 digits, a check digit (its algorithm is not public)
    recognizer(Kind.MO_ID, "157", r"[157]\d{6}(?:\(\d\)|\d)", "0-9()", (8, 10), after=_MACAU),
    # Taiwan: a letter (the place of first registration), 1 or 2 (sex), 8 digits
    recognizer(Kind.TW_ID, "A-Z", r"[A-Z][12]\d{8}", "A-Z0-9", (10, 10), tw_id_valid),
    # Mainland permits: to Hong Kong and Macau (C...), to Taiwan (L...), Home Return Permits
    # (H for Hong Kong, M for Macau residents; the old ones add a 2-digit issue count)
    recognizer(
        Kind.CN_TRAVEL_PERMIT,
        "CLHM",
        r"C(?:[A-Z]\d{7}|\d{8})|L\d{8}|[HM]\d{8}(?:\d\d)?",
        "A-Z0-9",
        (9, 11),
    ),
    recognizer(Kind.CN_TRAVEL_PERMIT, "0-9", r"\d{8}", "0-9", (8, 8), after=_TAIWAN_PERMIT),
    recognizer(Kind.US_SSN, "0-9", r"\d{3}[ .-]\d{2}[ .-]\d{4}", "0-9 .-", (11, 11), _ssn),
    recognizer(Kind.US_SSN, "0-9", r"\d{9}", "0-9", (9, 9), _ssn, after=_SSN),
)
