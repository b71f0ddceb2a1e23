"""Models of a replica's prompt (KV) cache, for the simulator.

`BlockCache`: one pool of prefix blocks, least recently used evicted first, as vLLM and SGLang
keep theirs. `SlotCache`: a fixed number of slots, each keeping the last prompt it ran, as
llama.cpp does: a request takes the free slot sharing the longest prefix with it (else the
least recently used free one) and overwrites it; a busy slot's prompt cannot be evicted.
"""

import itertools
from collections.abc import Sequence
from typing import Protocol

from tokenmill.scheduling.prefix import PrefixIndex


class PromptCache(Protocol):
    def admit(self, blocks: Sequence[int]) -> tuple[int, int]:
        """Blocks of this prompt found cached, and a handle to `release` when it is done."""
        ...

    def release(self, handle: int) -> None: ...


class BlockCache:
    def __init__(self, capacity_blocks: int) -> None:
        self._index = PrefixIndex(capacity_blocks)

    def admit(self, blocks: Sequence[int]) -> tuple[int, int]:
        cached = self._index.match(blocks)
        self._index.insert(blocks)
        return cached, 0

    def release(self, handle: int) -> None:
        pass  # blocks stay until evicted


class SlotCache:
    def __init__(self, slots: int) -> None:
        self._prompts: list[Sequence[int]] = [()] * slots
        self._busy = [False] * slots
        self._used = [0] * slots  # when each slot was last released
        self._clock = itertools.count(1)

    def admit(self, blocks: Sequence[int]) -> tuple[int, int]:
        free = [i for i, busy in enumerate(self._busy) if not busy]
        if not free:
            raise RuntimeError("no free slot: the scheduler placed more than the capacity")
        shared = {i: _common_prefix(self._prompts[i], blocks) for i in free}
        slot = max(free, key=lambda i: (shared[i], -self._used[i]))
        self._prompts[slot] = tuple(blocks)
        self._busy[slot] = True
        return shared[slot], slot

    def release(self, handle: int) -> None:
        self._busy[handle] = False
        self._used[handle] = next(self._clock)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
