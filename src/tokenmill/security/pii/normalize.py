"""What the recognizers read: full-width forms folded to ASCII, and digit groups with separators.

Folding maps one character to one character, so a span found in the folded text is the same
span of the original: what is masked never moves. Separators (a space, "-" or "." between digit
groups, as people write `110101 19900307 7758`) are not removed: the recognizers' patterns let a
separator stand between any two digits (`digits`), and `grouping` then checks that a value uses
one separator throughout in a plausible grouping, so neighbouring numbers do not run together.
"""

import re

# Full-width digits, letters and the signs PII is written with (% + - . ( ) @ _) as IMEs type
# them (not the full-width comma, colon and the like: every Chinese sentence has them, and no
# recognizer reads them), and the other spaces, dashes and dots people put between digit groups.
_WIDE_SIGNS = "\uff05\uff08\uff09\uff0b\uff0d\uff0e\uff20\uff3f"
_SPACES = "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u3000"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"
_DOTS = "\u00b7\u2022\u30fb"
_WIDE = re.compile(
    f"[{_SPACES}{_DASHES}{_DOTS}{_WIDE_SIGNS}\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+"
)
_TABLE: dict[int, int | str] = {
    **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)},
    **dict.fromkeys(map(ord, _SPACES), " "),
    **dict.fromkeys(map(ord, _DASHES), "-"),
    **dict.fromkeys(map(ord, _DOTS), "."),
}

SEP = "[ .-]"  # what may stand between two digit groups
_NOT_ALNUM = re.compile("[^0-9A-Za-z]")


def fold(text: str) -> str:
    """`text` with full-width forms as ASCII; the same length, so offsets carry over."""
    if _WIDE.search(text) is None:  # the usual case: no copy
        return text
    return _WIDE.sub(lambda m: m.group().translate(_TABLE), text)


def digits(n: int, last: str = r"\d") -> str:
    """A regex for n digits (the last one of class `last`), a separator allowed between any
    two. Deterministic: at each step the text decides, so no backtracking blows up."""
    return rf"\d(?:{SEP}?\d){{{n - 2}}}{SEP}?{last}" if n > 1 else last


def bare(value: str) -> str:
    """`value` without its separators and brackets: what a check character is computed on."""
    return value if value.isalnum() else _NOT_ALNUM.sub("", value)


def grouping(value: str) -> list[int] | None:
    """The lengths of the groups of letters and digits in `value`, or None where it mixes
    separators (`138-0013 8000`) or doubles one."""
    if value.isalnum():
        return [len(value)]
    seps = set(_NOT_ALNUM.findall(value))
    if len(seps) > 1:
        return None
    groups = [len(g) for g in value.split(seps.pop())]
    return None if 0 in groups else groups


def evenly_grouped(value: str) -> bool:
    """One separator, and groups of two or more characters, or every character on its own
    (`1 3 8 0 0 ...`); not a stray single digit, as in `13 80 01 38 00 0` (sensor readings)."""
    groups = grouping(value)
    return groups is not None and (min(groups) >= 2 or max(groups) == 1)
