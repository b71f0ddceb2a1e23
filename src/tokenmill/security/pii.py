"""PII content guard: Chinese resident IDs and mobiles, bank cards, emails and IP addresses.

A recognizer is a regex plus, for what a regex cannot check (checksums, dates, address syntax),
a validator; a match it refuses gives way to the longest shorter one that passes, as if the
check were part of the regex. All share one edge rule (nothing glued to word characters or
inside a dotted number), which is what makes masked text have nothing left to find. Every regex
is bounded: it examines at most `reach` characters from where an attempt starts and passes over
only characters of its `alphabet`, which lets `pii_stream.StreamMasker` release streamed text
before the stream ends.
"""

import datetime
import importlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any


class Kind(StrEnum):
    CN_ID = "cn_id"
    CN_MOBILE = "cn_mobile"
    BANK_CARD = "bank_card"
    EMAIL = "email"
    IP = "ip"


class PiiMode(StrEnum):
    OFF = "off"
    LOG = "log"  # detect and report, forward unchanged
    MASK = "mask"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a Kind, or a Presidio entity type in lower case
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Recognizer:
    kind: Kind
    pattern: re.Pattern[str]  # edge, body, edge
    head: re.Pattern[str]  # edge, body: to try the body's shorter matches
    valid: Callable[[str], bool] | None  # None: the regex says it all
    shortest: int  # no shorter match of the body to try when the validator refuses one
    alphabet: str  # a regex class: every character an attempt can pass over
    reach: int  # the most characters an attempt examines from where it starts


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_valid(s: str) -> bool:
    """GB 11643-1999: ISO 7064 MOD 11-2 check character and a real, past birth date."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    check = "10X98765432"[sum(int(c) * w for c, w in zip(s, _ID_WEIGHTS, strict=False)) % 11]
    if s[17].upper() != check:
        return False
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return born.year >= 1900 and born <= datetime.date.today()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# (first digits, allowed lengths): Visa, Mastercard, Amex, Discover, JCB, UnionPay
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


def card_valid(s: str) -> bool:
    """A known brand's prefix and length, and the Luhn check: random digit runs mostly fail."""
    digits = s.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit()):
        return False
    brand = any(
        int(digits[:width]) in prefixes and len(digits) in lengths
        for prefixes, width, lengths in _BRANDS
    )
    return brand and luhn_valid(digits)


def ipv6_valid(s: str) -> bool:
    try:
        return not ipaddress.IPv6Address(s).is_unspecified  # "::" is mostly code, not a host
    except ValueError:
        return False


# Where a match may start or end: not between two word characters, nor next to a "." that has
# word characters on both sides (1.2.3.4.5, v1.2). Every recognizer uses the same edge at both
# ends, so two neighbours see the same characters: either both are refused or neither is, and
# masking one can never make a neighbour appear. (Letters glued to a number block it too.)
_EDGE = r"(?!(?<=\w)\w)(?!(?<=\w)\.\w)(?!(?<=\w\.)\w)"
_END = re.compile(_EDGE, re.ASCII)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


def _rec(
    kind: Kind,
    first: str,
    body: str,
    valid: Callable[[str], bool] | None,
    chars: str,
    lengths: tuple[int, int],
) -> Recognizer:
    """`first`: what a match starts with (a cheap test before the edge's lookarounds); `chars`:
    what `body` consumes; the edges also pass over a "." and look 2 past the end."""
    head = f"(?=[{first}]){_EDGE}{body}"
    shortest, longest = lengths
    return Recognizer(
        kind,
        re.compile(head + _EDGE, re.ASCII),
        re.compile(head, re.ASCII),
        valid,
        shortest,
        f"[.{chars}]",
        longest + 2,
    )


_MOBILE = r"(?:(?:\+|00)?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}"
# contiguous, in fours (up to 19 digits) or Amex's 4-6-5; a brand's first digits up front
_CARD = (
    r"(?=4|5[1-5]|2[2-7]|3[457]|6[0245])(?:\d{13,19}"
    r"|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
    r"|\d{4}(?P<a>[ -])\d{6}(?P=a)\d{5})"
)
_EMAIL = rf"[\w.%+-]{{1,64}}@(?:{_LABEL}\.){{1,6}}[A-Za-z]{{2,24}}"
# up to 8 colons (bounds the shorter matches to try), ending in a group, an IPv4 or "::" (so a
# sentence's "." or a trailing ":" stays outside); only "::" may start with a colon
_HEX = "[0-9A-Fa-f]"
_IPV6 = (
    rf"(?={_HEX}{{1,4}}:|::)(?:{_HEX}{{0,4}}:){{1,8}}"
    rf"(?:\d{{1,3}}(?:\.\d{{1,3}}){{3}}|{_HEX}{{1,4}}|(?<=::))"
)

RECOGNIZERS: tuple[Recognizer, ...] = (
    _rec(Kind.CN_ID, "0-9", r"\d{17}[\dXx]", cn_id_valid, "0-9Xx", (18, 18)),
    _rec(Kind.CN_MOBILE, "+018", _MOBILE, None, "0-9+ -", (11, len("0086-138-0013-8000"))),
    _rec(Kind.BANK_CARD, "2-6", _CARD, card_valid, "0-9 -", (13, 19 + 4)),
    _rec(Kind.EMAIL, r"\w.%+-", _EMAIL, None, r"\w%+@-", (6, 64 + 1 + 6 * 64 + 24)),
    _rec(Kind.IP, "0-9", rf"{_OCTET}(?:\.{_OCTET}){{3}}", None, "0-9", (7, 15)),
    _rec(Kind.IP, "0-9A-Fa-f:", _IPV6, ipv6_valid, "0-9A-Fa-f:", (2, 8 * 5 + 15)),
)

# Overlapping candidates make one finding over their union, so no fragment of a loser is left
# unmasked; its kind is the longest's, then the most specific's (an 18-digit ID that passes
# Luhn is an ID).
_RANK: dict[str, int] = {k: i for i, k in enumerate(Kind)}


def recognizers(kinds: Iterable[str] | None = None) -> tuple[Recognizer, ...]:
    if kinds is None:
        return RECOGNIZERS
    wanted = set(kinds)
    if unknown := wanted - set(Kind):
        raise ValueError(f"unknown PII kinds: {sorted(unknown)}")
    return tuple(r for r in RECOGNIZERS if r.kind in wanted)


def _valid_end(r: Recognizer, text: str, m: re.Match[str]) -> int | None:
    """Where the longest valid match at m's start ends: as if the validator were part of the
    regex, so that masking a neighbour cannot turn up a shorter match that was there all along."""
    assert r.valid is not None
    start = m.start()
    if r.valid(m.group()):
        return m.end()
    for end in range(m.end() - 1, start + r.shortest - 1, -1):
        if (
            _END.match(text, end)
            and r.head.fullmatch(text, start, end)
            and r.valid(text[start:end])
        ):
            return end
    return None


def candidates(text: str, recs: Sequence[Recognizer], pos: int = 0) -> list[Finding]:
    """Every recognizer's valid matches from `pos` on, overlaps between recognizers unresolved."""
    out = []
    for r in recs:
        at = pos
        while m := r.pattern.search(text, at):
            end = m.end() if r.valid is None else _valid_end(r, text, m)
            if end is None:
                at = m.start() + 1  # as a regex would: try the next start
            else:
                out.append(Finding(r.kind, m.start(), end))
                at = end
    return out


def _clusters(findings: list[Finding]) -> Iterator[list[Finding]]:
    group: list[Finding] = []
    end = -1
    for f in sorted(findings, key=lambda f: f.start):
        if group and f.start >= end:
            yield group
            group = []
        group.append(f)
        end = max(end, f.end)
    if group:
        yield group


def resolve(findings: list[Finding]) -> list[Finding]:
    """Non-overlapping findings, by position."""
    out = []
    for group in _clusters(findings):
        best = min(group, key=lambda f: (f.start - f.end, _RANK.get(f.kind, 99), f.start))
        out.append(Finding(best.kind, group[0].start, max(f.end for f in group)))
    return out


def detect(text: str, kinds: Iterable[str] | None = None) -> list[Finding]:
    return resolve(candidates(text, recognizers(kinds)))


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def redact(text: str, findings: Iterable[Finding], start: int = 0, end: int | None = None) -> str:
    """text[start:end] with each finding (all inside that range) replaced by its placeholder."""
    parts, pos = [], start
    for f in findings:
        parts += [text[pos : f.start], placeholder(f.kind)]
        pos = f.end
    parts.append(text[pos:end])
    return "".join(parts)


def mask(text: str, kinds: Iterable[str] | None = None) -> tuple[str, list[Finding]]:
    found = detect(text, kinds)
    return redact(text, found), found


@dataclass(frozen=True, slots=True)
class Verdict:
    text: str  # what to forward: masked under MASK, else as given
    findings: list[Finding]
    blocked: bool


def guard(text: str, mode: PiiMode, kinds: Iterable[str] | None = None) -> Verdict:
    if mode is PiiMode.OFF:
        return Verdict(text, [], False)
    if mode is PiiMode.MASK:
        masked, found = mask(text, kinds)
        return Verdict(masked, found, False)
    found = detect(text, kinds)
    return Verdict(text, found, mode is PiiMode.BLOCK and bool(found))


@cache
def _presidio() -> Any:
    try:
        module = importlib.import_module("presidio_analyzer")
    except ImportError as e:
        msg = "presidio_findings needs the `pii` extra: pip install 'tokenmill[pii]'"
        raise RuntimeError(msg) from e
    return module.AnalyzerEngine()


def presidio_findings(text: str, language: str = "en") -> list[Finding]:
    """Presidio's recognizers (names, places, more languages), kinds in lower case."""
    results = _presidio().analyze(text=text, language=language)
    return resolve([Finding(r.entity_type.lower(), r.start, r.end) for r in results])


# -- scoring against a labelled set: shared by tests/test_pii.py and benchmarks/pii_guard.py --


@dataclass(slots=True)
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(samples: Iterable[dict[str, Any]]) -> dict[str, Score]:
    """Per kind and "all": a finding counts when its kind and exact text match a label."""
    scores: dict[str, Score] = {"all": Score()}
    for sample in samples:
        text = sample["text"]
        expected = [(p["kind"], p["value"]) for p in sample["pii"]]
        for f in detect(text):
            s = scores.setdefault(f.kind, Score())
            hit = (f.kind, text[f.start : f.end]) in expected
            if hit:
                expected.remove((f.kind, text[f.start : f.end]))
            for x in (s, scores["all"]):
                x.tp += hit
                x.fp += not hit
        for kind, _ in expected:
            for x in (scores.setdefault(kind, Score()), scores["all"]):
                x.fn += 1
    return scores


def score_table(scores: dict[str, Score]) -> str:
    rows = ["| kind | precision | recall | TP | FP | FN |", "|---|---|---|---|---|---|"]
    for kind in sorted(scores, key=lambda k: (k == "all", k)):
        s = scores[kind]
        rows.append(f"| {kind} | {s.precision:.3f} | {s.recall:.3f} | {s.tp} | {s.fp} | {s.fn} |")
    return "\n".join(rows)
