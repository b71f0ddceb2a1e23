"""Finding PII in a text and masking it: fold, run the recognizers, resolve overlaps, replace."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tokenmill.security.pii.kinds import Finding, PiiMode
from tokenmill.security.pii.normalize import fold
from tokenmill.security.pii.registry import RANK, recognizers
from tokenmill.security.pii.scan import candidates


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
    """Non-overlapping findings, by position: each over its overlapping candidates' union."""
    out = []
    for group in _clusters(findings):
        best = min(group, key=lambda f: (f.start - f.end, RANK.get(f.kind, 99), f.start))
        out.append(Finding(best.kind, group[0].start, max(f.end for f in group)))
    return out


def detect(text: str, kinds: Iterable[str] | None = None) -> list[Finding]:
    return resolve(candidates(fold(text), recognizers(kinds)))


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
