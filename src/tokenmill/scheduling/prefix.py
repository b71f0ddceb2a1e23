"""Prefix affinity without a tokenizer: prompts cut into fixed-size character blocks, each
block's hash chained to the one before, so equal hashes mean equal prefixes up to that block.

A replica's engine keeps the KV cache of recent prefixes; `PrefixIndex` is the router's guess
of which blocks a replica holds: the blocks of prompts recently sent there, LRU, sized to the
replica's cache.
"""

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

BLOCK_CHARS = 256  # ~64 tokens of English text; the unit of affinity


def prompt_blocks(parts: Iterable[str], block_chars: int = BLOCK_CHARS) -> tuple[int, ...]:
    """Chained hashes of the prompt's whole blocks (a partial last block is not cacheable)."""
    text = "\x1e".join(parts)  # a separator, so ("ab", "c") and ("a", "bc") differ
    hashes: list[int] = []
    prev = b""
    for start in range(0, len(text) - block_chars + 1, block_chars):
        digest = hashlib.blake2b(
            prev + text[start : start + block_chars].encode(), digest_size=8
        ).digest()
        hashes.append(int.from_bytes(digest, "little"))
        prev = digest
    return tuple(hashes)


class PrefixIndex:
    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 1:
            raise ValueError("a prefix index needs room for at least one block")
        self.capacity = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def match(self, blocks: Sequence[int]) -> int:
        """How many leading blocks of the prompt this replica probably has cached."""
        n = 0
        for block in blocks:
            if block not in self._blocks:
                break
            n += 1
        return n

    def insert(self, blocks: Sequence[int]) -> None:
        for block in blocks:
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
