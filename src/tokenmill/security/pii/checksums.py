"""Check characters, each on the bare characters of a value (separators already removed, upper
case): a typo or a made-up number mostly fails them."""

import datetime
import operator
import string
import tomllib
from functools import cache
from importlib import resources

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def birth_date(s: str) -> datetime.date | None:
    """The birth date in an 18-character resident ID's place for one (7th-14th), if it is a
    real date from 1900 to today."""
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return None
    return born if born.year >= 1900 and born <= datetime.date.today() else None


def id_shaped(s: str) -> bool:
    """18 digits (or 17 and an X) with a birth date where a resident ID has one: an ID, maybe
    with a typo, rather than a card or a company that happens to pass its own check (a real
    one's digits there form a date about once in 2,000)."""
    return len(s) == 18 and s[:17].isdigit() and birth_date(s) is not None


def cn_id_valid(s: str) -> bool:
    """GB 11643-1999: ISO 7064 MOD 11-2 check character and a real, past birth date."""
    if len(s) != 18 or not (s[:17].isascii() and s[:17].isdigit()):
        return False
    total = sum(map(operator.mul, map(int, s[:17]), _ID_WEIGHTS))
    return s[17].upper() == "10X98765432"[total % 11] and birth_date(s) is not None


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, its digits summed


def luhn_valid(digits: str) -> bool:
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_DOUBLED.__getitem__, map(int, digits[-2::-2])))
    return (kept + doubled) % 10 == 0


# (first digits, their width, allowed lengths): Visa, Mastercard, Amex, Discover, JCB, UnionPay
_BRANDS: tuple[tuple[range, int, frozenset[int]], ...] = (
    (range(4, 5), 1, frozenset({13, 16, 19})),
    (range(51, 56), 2, frozenset({16})),
    (range(2221, 2721), 4, frozenset({16})),
    (range(34, 35), 2, frozenset({15})),
    (range(37, 38), 2, frozenset({15})),
    (range(6011, 6012), 4, frozenset({16, 17, 18, 19})),
    (range(644, 650), 3, frozenset({16, 17, 18, 19})),
    (range(65, 66), 2, frozenset({16, 17, 18, 19})),
    (range(3528, 3590), 4, frozenset({16, 17, 18, 19})),
    (range(62, 63), 2, frozenset({16, 17, 18, 19})),
)


def card_valid(digits: str) -> bool:
    """A known brand's prefix and length, and the Luhn check: random digit runs mostly fail."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    n = len(digits)
    brand = any(
        n in lengths and int(digits[:width]) in prefixes for prefixes, width, lengths in _BRANDS
    )
    return brand and luhn_valid(digits) and not id_shaped(digits)


def _letter(c: str) -> int:
    return ord(c) - ord("A") + 10  # A=10 ... Z=35, as in ISO 7064 and the HKID


def hk_id_valid(s: str) -> bool:
    """1-2 letters, 6 digits, a check character (0-9 or A): weights 9..1, mod 11; a one-letter
    ID counts as if led by a space worth 36."""
    head = s[:-1] if len(s) == 9 else " " + s[:-1]
    values = [36 if c == " " else _letter(c) if c.isalpha() else int(c) for c in head]
    check = 10 if s[-1] == "A" else int(s[-1])
    return sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True)) % 11 == (-check) % 11


# Taiwan's ID letters stand for two digits: the issuing city or county, in the 1985 order.
_TW_CODES = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))


def tw_id_valid(s: str) -> bool:
    """A letter, 1 or 2 (sex), 8 digits; the letter's two digits and the 9 others weighted
    1,9,8,...,1,1 sum to a multiple of 10."""
    code = _TW_CODES[s[0]]
    values = [code // 10, code % 10, *map(int, s[1:])]
    weights = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1)
    return sum(v * w for v, w in zip(values, weights, strict=True)) % 10 == 0


USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
_USCC_VALUES = {c: i for i, c in enumerate(USCC_CHARS)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_valid(s: str) -> bool:
    """GB 32100-2015: 18 characters of USCC_CHARS, the last a check character mod 31, and
    digits among them (its 3rd-8th are a region code)."""
    if len(s) != 18 or not all(c in _USCC_VALUES for c in s) or s.isalpha():
        return False
    total = sum(map(operator.mul, map(_USCC_VALUES.__getitem__, s[:17]), _USCC_WEIGHTS))
    return USCC_CHARS[-total % 31] == s[17] and not id_shaped(s)


@cache
def iban_lengths() -> dict[str, int]:
    text = resources.files("tokenmill.security").joinpath("data/iban_lengths.toml").read_text()
    return dict(tomllib.loads(text)["lengths"])


# ISO 13616's letters as numbers: A=10 ... Z=35
_IBAN_DIGITS = str.maketrans({c: str(ord(c) - ord("A") + 10) for c in string.ascii_uppercase})


def iban_valid(s: str) -> bool:
    """ISO 13616: the country's length where it is known (15-34 elsewhere), and mod 97 of the
    number with its first four characters moved to the end, letters as 10-35, equal to 1."""
    if not (s.isascii() and s.isalnum() and s[:2].isupper()):
        return False
    if len(s) != iban_lengths().get(s[:2], len(s)) or not 15 <= len(s) <= 34:
        return False
    return int((s[4:] + s[:4]).translate(_IBAN_DIGITS)) % 97 == 1


def ssn_valid(s: str) -> bool:
    """Never issued: area 000, 666 or 900-999, group 00, serial 0000."""
    area, group, serial = s[:3], s[3:5], s[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
