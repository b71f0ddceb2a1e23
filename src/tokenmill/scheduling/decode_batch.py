"""A replica's decoding sequences, kept by iteration number instead of one by one.

Every iteration decodes one token for each of them, so a sequence that joined at iteration
`t0` with context `c0` is at `c0 + (t - t0)` in iteration `t`, and it leaves after the number
of iterations it has tokens left. Keeping the offset `c0 - t0` per sequence makes the batch's
context sum `sum(offsets) + count x t`, and the sequences that leave come off a heap of their
last iterations: an iteration costs the sequences that join or leave it, not the batch (a
TensorRT-LLM burst runs 1,600 sequences for 16,000 iterations). Contexts capped at a sliding
window keep, per window asked for, the sequences still below it and a heap of the iterations
at which each reaches it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Window:
    """The sequences whose context is still below `size`: their offsets, summed."""

    size: int
    below: dict[int, int] = field(default_factory=dict)  # key -> offset
    offsets: int = 0
    reaching: list[tuple[int, int]] = field(default_factory=list)  # (iteration, key): a heap

    def add(self, key: int, offset: int, now: int) -> None:
        if offset + now < self.size:
            self.below[key] = offset
            self.offsets += offset
            heapq.heappush(self.reaching, (self.size - offset, key))

    def drop(self, key: int) -> None:
        offset = self.below.pop(key, None)
        if offset is not None:
            self.offsets -= offset

    def capped(self, now: int, count: int) -> int:
        while self.reaching and self.reaching[0][0] <= now:
            self.drop(heapq.heappop(self.reaching)[1])
        return self.offsets + len(self.below) * now + (count - len(self.below)) * self.size


class DecodeBatch(Generic[T]):
    """Decoding sequences (`core.contexts.Contexts` of the running iteration). `key`s order the
    sequences that leave in one iteration, as the engine lists them."""

    def __init__(self) -> None:
        self.now = 0  # iterations done
        self._offsets: dict[int, int] = {}  # key -> context - iteration it joined at
        self._offset_sum = 0
        self._leaving: list[tuple[int, int, T]] = []  # (iteration it leaves at, key, item)
        self._windows: dict[int, _Window] = {}

    def add(self, key: int, item: T, context: int, iterations: int) -> None:
        """`item` decodes from the next iteration on, at `context` in it, for `iterations`
        (at least one). `key` is new for the batch's whole life."""
        if iterations < 1 or key in self._offsets:
            raise ValueError(f"sequence {key}: {iterations} iterations, or its key taken")
        offset = context - self.now
        self._offsets[key] = offset
        self._offset_sum += offset
        heapq.heappush(self._leaving, (self.now + iterations, key, item))
        for window in self._windows.values():
            window.add(key, offset, self.now)

    def advance(self) -> list[tuple[int, T]]:
        """Ends an iteration: (key, item) of the sequences it was the last of, by key."""
        self.now += 1
        left = []
        while self._leaving and self._leaving[0][0] <= self.now:
            _, key, item = heapq.heappop(self._leaving)
            self._offset_sum -= self._offsets.pop(key)
            for window in self._windows.values():
                window.drop(key)
            left.append((key, item))
        return left

    def __len__(self) -> int:
        return len(self._offsets)

    def total(self) -> float:
        return self._offset_sum + len(self._offsets) * self.now

    def capped(self, window: int) -> float:
        kept = self._windows.get(window)
        if kept is None:
            kept = self._windows[window] = _Window(window)
            for key, offset in self._offsets.items():
                kept.add(key, offset, self.now)
        return kept.capped(self.now, len(self._offsets))
