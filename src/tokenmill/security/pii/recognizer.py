"""A recognizer: a bounded regex, a validator for what a regex cannot check, and optionally the
words that must come right before a match. `scan.candidates` runs them over folded text.

A validator that refuses a match gives way to the longest shorter one that passes, as if the
check were part of the regex. All recognizers share one edge rule (nothing glued to word
characters or inside a dotted number), which is what makes masked text have nothing left to
find. Every regex is bounded: it examines at most `reach` characters from where an attempt
starts and passes over only characters of its `alphabet`, and a context looks back at most
`behind` characters, which lets `pii_stream.StreamMasker` release streamed text early.
"""

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from tokenmill.security.pii.kinds import Kind

# Where a match may start or end: not between two word characters, nor next to a "." that has
# word characters on both sides (1.2.3.4.5, v1.2). Every recognizer uses the same edge at both
# ends, so two neighbours see the same characters: either both are refused or neither is, and
# masking one can never make a neighbour appear. (Letters glued to a number block it too.)
EDGE = r"(?!(?<=\w)\w)(?!(?<=\w)\.\w)(?!(?<=\w\.)\w)"
# A context's word may be followed by a few characters (`护照号码`, ` No.: `), never digits,
# brackets, "@" or a line or sentence end (full-width too): a placeholder ("[EMAIL]") or another
# number between the word and a match breaks the context, so masking one finding cannot create
# another.
_GAP = re.compile("[^0-9\\[\\]@\n;!?\u3002\uff1b\uff01\uff1f]*", re.ASCII)
_LETTERS = frozenset(string.ascii_letters)


@dataclass(frozen=True, slots=True, eq=False)
class Context:
    """Words of which one must come right before a match, with at most `gap` characters of
    `_GAP` between: as written, capitalised or in capitals, and a Latin one not glued to a
    letter before it."""

    words: tuple[str, ...]
    gap: int = 32

    @property
    def behind(self) -> int:
        """The most characters it looks back from a match's start."""
        return 1 + max(map(len, self.words)) + self.gap

    def starts(self, folded: str) -> list[tuple[int, int]]:
        """Where a match may start: ranges [lo, hi], in order and apart."""
        spans = []
        for word in self.words:
            latin = word.isascii()
            for form in {word, word.capitalize(), word.title(), word.upper()}:
                at = folded.find(form)
                while at >= 0:
                    if not (latin and at and folded[at - 1] in _LETTERS):
                        end = at + len(form)
                        gap = _GAP.match(folded, end, end + self.gap)
                        assert gap is not None  # `*` always matches
                        spans.append((end, gap.end()))
                    at = folded.find(form, at + 1)
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged


def context(*words: str, gap: int = 32) -> Context:
    """`words` in lower case (a Latin one is also found capitalised or in capitals)."""
    return Context(words, gap)


@dataclass(frozen=True, slots=True, eq=False)  # one of a kind: hashed by identity, quickly
class Recognizer:
    """How one kind (or one of its forms) is found; built by `recognizer`."""

    kind: Kind
    first: str  # a regex class's inside: the characters a match can start with
    body: str  # the regex of a match, between edges
    head: re.Pattern[str]  # edge, body: to try the body's shorter matches
    valid: Callable[[str], bool] | None  # None: the regex says it all
    shorter: bool  # whether the body can also match shorter at a start (else edges forbid it)
    shortest: int  # no shorter match of the body to try when the validator refuses one
    alphabet: str  # a regex class: every character an attempt can pass over
    reach: int  # the most characters an attempt examines from where it starts
    context: Context | None  # what must come right before a match
    anchor: str  # "" or a character every match holds within `lead` characters of its start
    lead_run: re.Pattern[str] | None  # the alphabet's run back from an anchor to a start
    lead: int  # how long that run can be


def recognizer(
    kind: Kind,
    first: str,
    body: str,
    chars: str,
    lengths: tuple[int, int],
    valid: Callable[[str], bool] | None = None,
    *,
    shorter: bool = False,
    after: Context | None = None,
    anchor: str = "",
    lead: int = 0,
) -> Recognizer:
    """`first`: the characters a match can start with; `body`: its regex (no capturing
    groups); `chars`: what `body` consumes (the edges also pass over a "." and look 2 past the
    end); `lengths`: a match's fewest and most characters; `valid`: what the regex cannot
    check; `shorter`: whether the body can also match shorter at a start; `after`: the words a
    match must follow; `anchor`: a character every match holds within `lead` of its start."""
    alphabet = f"[.{chars}]"
    head = re.compile(f"{EDGE}(?:{body})", re.ASCII)
    assert head.groups == 0, body
    return Recognizer(
        kind,
        first,
        body,
        head,
        valid,
        shorter,
        lengths[0],
        alphabet,
        lengths[1] + 2,
        after,
        anchor,
        re.compile(f"{alphabet}{{0,{lead}}}", re.ASCII) if anchor else None,
        lead,
    )
