"""Masking a streamed completion (SSE deltas) without waiting for its end.

Text is released up to a cut that later text cannot change. A match attempt that later text
could change must run into the end of what has arrived, so it starts inside the trailing run of
characters its regex can pass over (`Recognizer.alphabet`) and within its `reach` of the end;
everything before the earliest such start is settled, but the cut moves back to the start of
any match that straddles it, since the scan resumes after a match. Hence the output, however the
text is chunked, is exactly `mask(full_text)[0]`. What waits is the trailing run that could
still become PII: usually the last word or number; at most the longest reach (~475 characters,
a long email-like run) plus a match straddling it (more only where matches of different kinds
overlap in a chain).
"""

import re
from collections.abc import Iterable

from tokenmill.security.pii import candidates, recognizers, redact, resolve

CONTEXT = 8  # released characters kept for the lookbehinds (the longest looks back one)


class StreamMasker:
    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        self._recs = recognizers(kinds)
        self._runs = [re.compile(f"{r.alphabet}{{0,{r.reach}}}", re.ASCII) for r in self._recs]
        self._reach = max(r.reach for r in self._recs)
        self._text = ""  # up to CONTEXT released characters, then the pending ones
        self._done = 0  # where the pending characters start in _text

    @property
    def held(self) -> int:
        """Characters received and not yet released."""
        return len(self._text) - self._done

    def feed(self, delta: str) -> str:
        """The masked text that is safe to emit now."""
        self._text += delta
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, at the end of the stream; the masker is then ready for a new one."""
        out = self._release(final=True)
        self._text, self._done = "", 0
        return out

    def _release(self, final: bool) -> str:
        text = self._text
        found = candidates(text, self._recs, self._done)
        cut = len(text)
        if not final:
            backwards = text[: -self._reach - 1 : -1]
            for run in self._runs:
                m = run.match(backwards)
                assert m is not None  # `{0,n}` always matches
                cut = min(cut, len(text) - m.end())
            cut = max(cut, self._done)
            # the scan resumes after a match, so one straddling the cut would not be seen again
            while straddling := [f.start for f in found if f.start < cut < f.end]:
                cut = min(straddling)
        done = [f for f in resolve(found) if f.end <= cut]
        out = redact(text, done, self._done, cut)
        drop = max(0, cut - CONTEXT)
        self._text, self._done = text[drop:], cut - drop
        return out
