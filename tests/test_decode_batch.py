"""The simulator's decoding sequences kept by iteration number (`scheduling.decode_batch`)
against the plain list of contexts it replaces."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmill.core.contexts import ContextList
from tokenmill.scheduling.decode_batch import DecodeBatch

WINDOWS = (1, 128, 1000)
# per iteration: sequences that join, each (context, iterations left)
JOINS = st.lists(st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 60)), max_size=6),
                 max_size=80)  # fmt: skip


@given(JOINS, st.sampled_from(WINDOWS))
def test_a_batch_reads_as_the_list_of_its_contexts(joins: list[list[tuple[int, int]]],
                                                    asked_first: int) -> None:  # fmt: skip
    batch: DecodeBatch[str] = DecodeBatch()
    plain: dict[int, list[int]] = {}  # key -> [context, iterations left]
    keys = iter(range(10**6))
    batch.capped(asked_first)  # a window asked for before sequences join is kept up to date
    for joining in joins:
        for context, iterations in joining:
            key = next(keys)
            batch.add(key, f"s{key}", context, iterations)
            plain[key] = [context, iterations]
        contexts = ContextList([c for c, _ in plain.values()])
        assert len(batch) == len(contexts)
        assert batch.total() == contexts.total()
        assert all(batch.capped(w) == contexts.capped(w) for w in WINDOWS)
        left = batch.advance()
        for entry in plain.values():
            entry[0] += 1
            entry[1] -= 1
        ended = sorted(k for k, (_, n) in plain.items() if n == 0)
        assert left == [(k, f"s{k}") for k in ended]  # in key order
        for k in ended:
            del plain[k]


def test_a_key_is_used_once_and_a_sequence_decodes_at_least_once() -> None:
    batch: DecodeBatch[str] = DecodeBatch()
    batch.add(1, "a", 100, 5)
    with pytest.raises(ValueError, match="key taken"):
        batch.add(1, "b", 100, 5)
    with pytest.raises(ValueError, match="0 iterations"):
        batch.add(2, "c", 100, 0)
