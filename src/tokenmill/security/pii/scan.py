"""Running recognizers over folded text: `candidates`.

Each recognizer's regex is searched as one pattern: a consuming first character, which lets
`re` skip to the next place a match could start (its fast scan), then the edge before it, a
quick look at whether enough characters of the right kind follow, and the match itself as a
lookahead, captured as a group. Recognizers without an anchor run together, each in its own
optional lookahead of one pattern: one pass visits every place where any of them matches, and
each takes the matches its own scan would (from where its last match ended, or the next start
after one its validator or its context refused). A recognizer with an anchor (an email's "@")
runs on its own, searched only around each anchor: prose is full of places an email could
start, and few "@".
"""

import bisect
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from tokenmill.security.pii.kinds import Finding
from tokenmill.security.pii.recognizer import EDGE, Context, Recognizer

_END = re.compile(EDGE, re.ASCII)
_Search = Callable[..., re.Match[str] | None]  # a compiled pattern's `search`
# Every valid match of a pattern kind holds a digit, an "@" (email) or a ":" (IPv6): text
# without any has nothing to find (most prose, most streamed deltas).
_TRIGGER = re.compile("[0-9@:]")
_SHORT = 2000  # a text this short is searched whole: cheaper than looking for words first
_ASCII = [chr(c) for c in range(128)]
_WORD = frozenset(string.ascii_letters + string.digits + "_")


def _chars(regex_class: str) -> set[str]:
    pattern = re.compile(regex_class, re.ASCII)
    return {c for c in _ASCII if pattern.fullmatch(c)}


def _class(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


@cache
def pattern(recs: tuple[Recognizer, ...]) -> re.Pattern[str]:
    """One pass for `recs`: group i+1 is recs[i]'s match where it has one here."""
    firsts = set().union(*(_chars(f"[{r.first}]") for r in recs))
    first = _class(firsts)
    # the edge before a first character already consumed: where it is a word character, none
    # just before it, nor a word character and a "." (1.2); a "." first needs the whole rule
    edge = r"(?<!\w.)(?<!\w\..)"
    if "." in firsts:
        edge = f"(?<=(?={EDGE}).)"
    elif others := firsts - _WORD:
        edge = f"(?:(?<={_class(others)})|{edge})"
    fewest = min(r.shortest for r in recs)
    ahead = f"(?={first}{_class(set().union(*(_chars(r.alphabet) for r in recs)))}{{{fewest - 1}}})"
    matches = "".join(f"(?=({r.body}){EDGE})?" for r in recs)
    some = "(?!)"  # at least one of them matched
    for i in reversed(range(len(recs))):
        some = f"(?({i + 1})|{some})"
    return re.compile(f"{first}{edge}(?<={ahead}{matches}{first}){some}", re.ASCII)


@dataclass(frozen=True, eq=False)
class _Group:
    """Recognizers that run together, in one pattern."""

    recs: tuple[Recognizer, ...]
    search: _Search
    reach: int  # the longest of theirs
    contexts: tuple[Context, ...]  # theirs, if every one of them has one

    @classmethod
    def of(cls, recs: tuple[Recognizer, ...]) -> "_Group":
        contexts = tuple({r.context for r in recs if r.context is not None})
        return cls(
            recs,
            pattern(recs).search,
            max(r.reach for r in recs),
            contexts if all(r.context for r in recs) else (),
        )


class _Text:
    """A folded text and what the recognizers share over it: where contexts allow a match."""

    def __init__(self, folded: str) -> None:
        self.folded = folded
        self._starts: dict[Context, list[tuple[int, int]]] = {}

    def starts(self, ctx: Context) -> list[tuple[int, int]]:
        if ctx not in self._starts:
            self._starts[ctx] = ctx.starts(self.folded)
        return self._starts[ctx]

    def allows(self, ctx: Context, start: int) -> bool:
        spans = self.starts(ctx)
        i = bisect.bisect_left(spans, start, key=lambda s: s[1])  # the first not ending before
        return i < len(spans) and spans[i][0] <= start

    def hits(self, group: _Group, pos: int) -> Iterator[re.Match[str]]:
        """Every place from `pos` on where `group`'s pattern matches; for a group that needs
        words before a match, in a long text, only where some of the words allow one (the
        words are quick to find, and most texts have none)."""
        text, search = self.folded, group.search
        if not group.contexts or len(text) - pos < _SHORT:
            while m := search(text, pos):
                yield m
                pos = m.start() + 1
            return
        spans = sorted(s for ctx in group.contexts for s in self.starts(ctx))
        for lo, hi in spans:
            while pos <= hi and (m := search(text, max(pos, lo), hi + group.reach + 2)):
                if m.start() > hi:
                    break
                yield m
                pos = m.start() + 1


def _search(r: Recognizer, search: _Search, text: str, at: int) -> re.Match[str] | None:
    """The leftmost match of `r` (its pattern's `search`) from `at` on, looking only around
    its anchors: a match passes over its alphabet only, so it starts in the run of that
    alphabet that ends at its first anchor."""
    a = text.find(r.anchor, at)
    while a >= 0:
        assert r.lead_run is not None
        run = r.lead_run.match(text[max(at, a - r.lead) : a][::-1])
        assert run is not None  # `{0,n}` always matches
        m = search(text, max(at, a - run.end()), a + r.reach + 2)
        if m is not None and m.start() <= a:  # else it holds a later anchor: search from there
            return m
        a = text.find(r.anchor, a + 1)
    return None


def _valid_end(r: Recognizer, text: str, start: int, end: int) -> int | None:
    """Where the longest valid match at `start` ends: as if the validator were part of the
    regex, so that masking a neighbour cannot turn up a shorter match that was there all along."""
    value = text[start:end]
    if r.valid is None or r.valid(value):
        return end
    if not r.shorter or value.isalnum():  # glued characters: no edge inside
        return None
    for n in range(len(value) - 1, r.shortest - 1, -1):
        if value[n - 1].isalnum() and value[n].isalnum():
            continue  # glued: no edge between
        shorter = start + n
        if (
            _END.match(text, shorter)
            and r.head.fullmatch(text, start, shorter)
            and r.valid(value[:n])
        ):
            return shorter
    return None


def _together(t: _Text, group: _Group, pos: int) -> list[Finding]:
    recs = group.recs
    ats = [pos] * len(recs)  # where each recognizer's own scan would go on from
    out = []
    for m in t.hits(group, pos):
        start = m.start()
        for i, (_, end) in enumerate(m.regs[1:]):
            r = recs[i]
            if end < 0 or start < ats[i] or (r.context and not t.allows(r.context, start)):
                continue  # no match of its here, or its scan is past here
            found = _valid_end(r, t.folded, start, end)
            if found is not None:
                out.append(Finding(r.kind, start, found))
                ats[i] = found
    return out


@cache
def _plan(recs: tuple[Recognizer, ...]) -> tuple[list[_Group], list[tuple[Recognizer, _Search]]]:
    """Who runs together (those with words before them apart: they can skip most of a text),
    and the anchored, each with its own pattern."""
    plain = tuple(r for r in recs if not r.anchor and r.context is None)
    worded = tuple(r for r in recs if not r.anchor and r.context is not None)
    groups = [_Group.of(g) for g in (plain, worded) if g]
    return groups, [(r, pattern((r,)).search) for r in recs if r.anchor]


def candidates(folded: str, recs: tuple[Recognizer, ...], pos: int = 0) -> list[Finding]:
    """Every recognizer's valid matches in `folded` (normalize.fold's) from `pos` on, overlaps
    between recognizers unresolved."""
    if not recs or _TRIGGER.search(folded, pos) is None:
        return []
    groups, anchored = _plan(recs)
    t = _Text(folded)
    out = [f for group in groups for f in _together(t, group, pos)]
    for r, search in anchored:
        at = pos
        while m := _search(r, search, folded, at):
            start = m.start()
            end = _valid_end(r, folded, start, m.end(1))
            if end is None:
                at = start + 1  # as a regex would: try the next start
            else:
                out.append(Finding(r.kind, start, end))
                at = end
    return out
