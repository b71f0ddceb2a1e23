"""The context lengths of an iteration's decoding sequences, as an iteration's cost reads them:
how many there are, their sum, and their sum with each capped at a sliding window. The fleet
simulator keeps these up to date as its batches grow a token per iteration
(`scheduling.decode_batch`) instead of listing thousands of contexts every iteration; the
planner's performance model (`economics.perf_model`) reads them either way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Contexts(Protocol):
    def __len__(self) -> int: ...

    def total(self) -> float:
        """The contexts' sum."""
        ...

    def capped(self, window: int) -> float:
        """The sum of min(context, `window`)."""
        ...


@dataclass(frozen=True, slots=True)
class ContextList:
    """`Contexts` of a plain list."""

    contexts: Sequence[float]

    def __len__(self) -> int:
        return len(self.contexts)

    def total(self) -> float:
        return float(sum(self.contexts))

    def capped(self, window: int) -> float:
        return float(sum(min(c, window) for c in self.contexts))


@dataclass(frozen=True, slots=True)
class SameContexts:
    """`count` sequences all at `context`: the planner's steady state."""

    context: float
    count: int

    def __len__(self) -> int:
        return self.count

    def total(self) -> float:
        return self.context * self.count

    def capped(self, window: int) -> float:
        return min(self.context, window) * self.count


def contexts_of(decode: Sequence[float] | Contexts) -> Contexts:
    """A list of contexts as `Contexts`; `Contexts` as they are."""
    return ContextList(decode) if isinstance(decode, Sequence) else decode
