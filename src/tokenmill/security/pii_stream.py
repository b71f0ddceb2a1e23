"""Masking a streamed completion (SSE deltas) without waiting for its end.

Text is released up to a cut that later text cannot change. A match attempt that later text
could change must run into the end of what has arrived, so it starts inside the trailing run of
characters its regex can pass over (`Recognizer.alphabet`) and within its `reach` of the end;
everything before the earliest such start is settled, but the cut moves back to the start of
any match that straddles it, since the scan resumes after a match. What a match must follow (a
keyword, `Recognizer.context`) lies before it, in text already here: the masker keeps that much
released text to look back at. Folding maps each character on its own, so folding deltas one by
one is folding the whole. Hence the output, however the text is chunked, is exactly
`mask(full_text)[0]`. What waits is the trailing run that could still become PII: usually the
last word or number; at most the longest reach (~475 characters, a long email-like run) plus a
match straddling it (more only where matches of different kinds overlap in a chain).
"""

import re
import string
from collections.abc import Iterable
from functools import cache

from tokenmill.security.pii import Recognizer, candidates, fold, recognizers, redact, resolve

_ASCII = [chr(c) for c in range(128)]
_WORDS = frozenset(string.ascii_lowercase) - {"x"}  # what prose is made of (x: an ID's check)


@cache
def _bounds(recs: tuple[Recognizer, ...]) -> tuple[list[re.Pattern[str]], int, int]:
    """The trailing-run patterns that decide the cut, the longest reach, and how many released
    characters to keep for lookbehinds (an edge's 2, a context's words and gap). A run over a
    wider alphabet and as long as another's never cuts later, so runs may merge: those that
    cannot pass over a word merge into one (it may hold back a few more digits, capitals and
    separators), and a run inside another's is dropped."""
    runs = [(frozenset(filter(re.compile(r.alphabet).fullmatch, _ASCII)), r.reach) for r in recs]
    numeric = [(chars, n) for chars, n in runs if not chars & _WORDS]
    if numeric:
        merged = (frozenset().union(*(c for c, _ in numeric)), max(n for _, n in numeric))
        runs = [merged, *((c, n) for c, n in runs if c & _WORDS)]
    kept = {
        (chars, n)
        for chars, n in runs
        if not any(chars <= c and n <= m and (c, m) != (chars, n) for c, m in runs)
    }
    keep = max([8, *(r.context.behind for r in recs if r.context)])
    reach = max((r.reach for r in recs), default=0)
    patterns = [
        re.compile("[" + "".join(map(re.escape, sorted(c))) + f"]{{0,{n}}}") for c, n in kept
    ]
    return patterns, reach, keep


class StreamMasker:
    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        self._recs = recognizers(kinds)
        self._runs, self._reach, self._keep = _bounds(self._recs)
        self._text = ""  # up to _keep released characters, then the pending ones
        self._folded = ""  # the same, folded
        self._done = 0  # where the pending characters start in _text

    @property
    def held(self) -> int:
        """Characters received and not yet released."""
        return len(self._text) - self._done

    def feed(self, delta: str) -> str:
        """The masked text that is safe to emit now."""
        self._text += delta
        self._folded += fold(delta)
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, at the end of the stream; the masker is then ready for a new one."""
        out = self._release(final=True)
        self._text, self._folded, self._done = "", "", 0
        return out

    def _release(self, final: bool) -> str:
        text, folded = self._text, self._folded
        found = candidates(folded, self._recs, self._done)
        cut = len(text)
        if not final:  # the cut comes no earlier than the pending text: look only at that
            backwards = folded[max(self._done, len(folded) - self._reach) :][::-1]
            for run in self._runs:
                m = run.match(backwards)
                assert m is not None  # `{0,n}` always matches
                cut = min(cut, len(text) - m.end())
            cut = max(cut, self._done)
            # the scan resumes after a match, so one straddling the cut would not be seen again
            while straddling := [f.start for f in found if f.start < cut < f.end]:
                cut = min(straddling)
        if found:
            out = redact(text, [f for f in resolve(found) if f.end <= cut], self._done, cut)
        else:
            out = text[self._done : cut]
        drop = max(0, cut - self._keep)
        self._text, self._folded, self._done = text[drop:], folded[drop:], cut - drop
        return out
