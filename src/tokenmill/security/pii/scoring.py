"""Precision and recall against a labelled set: shared by tests/test_pii.py and
benchmarks/pii_guard.py."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokenmill.security.pii.detect import detect


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
