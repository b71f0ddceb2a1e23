"""What `tokenmill bench` sends: requests with an arrival time, a tenant and a prompt.

Prompts are made of deterministic pseudo-random words, so equal prefixes are equal text on every
run and every engine: a synthetic tenant's system prompt, or a trace's prefix block (Mooncake's
`hash_ids`: one id, one fixed run of words).
"""

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokenmill.scheduling.traces import TraceRow, tenant_of

# Common short English words: about one token each in most tokenizers.
_WORDS = tuple(
    " ".join(
        (
            "the of and to in is it you that he was for on are as with his they at be this have",
            "from or one had by word but not what all were we when your can said there use an",
            "each which she do how their if will up other about out many then them these so some",
            "her would make like him into time has look two more write go see number no way could",
            "people my than first water been call who oil its now find long down day did get come",
        )
    ).split()
)


def words(seed: int, count: int) -> str:
    rng = random.Random(seed)  # noqa: S311 - reproducible text, not secrets
    return " ".join(rng.choice(_WORDS) for _ in range(count))


@dataclass(frozen=True)
class BenchRequest:
    at: float  # seconds after the start (open loop); closed loops ignore it
    tenant: str
    messages: tuple[dict[str, Any], ...]
    max_tokens: int
    service_tier: str | None = None  # "flex": TokenMill's batch band


def synthetic(
    shares: dict[str, float],
    requests: int,
    rate: float,
    system_tokens: int = 1000,
    prompt_tokens: int = 32,
    max_tokens: int = 32,
    seed: int = 1,
) -> list[BenchRequest]:
    """Tenants with their own long system prompt, sending in proportion to `shares`, Poisson
    arrivals at `rate` per second in total."""
    rng = random.Random(seed)  # noqa: S311 - reproducible load, not secrets
    names = list(shares)
    weights = [shares[n] for n in names]
    systems = {n: words(-1 - i, system_tokens) for i, n in enumerate(names)}
    out, at = [], 0.0
    for i in range(requests):
        at += rng.expovariate(rate)
        tenant = rng.choices(names, weights)[0]
        messages = (
            {"role": "system", "content": systems[tenant]},
            {"role": "user", "content": words(seed * 1_000_003 + i, prompt_tokens)},
        )
        out.append(BenchRequest(at, tenant, messages, max_tokens))
    return out


def from_trace(
    rows: Iterable[TraceRow],
    block_tokens: int = 16,
    tenants: int = 4,
    limit: int | None = None,
    max_prompt_tokens: int | None = None,
    max_tokens: int | None = None,
) -> list[BenchRequest]:
    """Trace rows as requests. A row with prefix blocks (Mooncake) gets `block_tokens` fixed
    words per block (512 tokens in the trace; fewer lets a small engine replay the prefix
    structure); one without (Azure) gets its prompt length in words, capped."""
    out = []
    for i, row in enumerate(itertools.islice(rows, limit)):
        if row.blocks:
            prompt = " ".join(words(b, block_tokens) for b in row.blocks)
        else:
            prompt = words(i, min(row.input_tokens, max_prompt_tokens or row.input_tokens))
        out.append(BenchRequest(
            at=row.at,
            tenant=tenant_of(row, tenants),
            messages=({"role": "user", "content": prompt},),
            max_tokens=min(row.output_tokens, max_tokens or row.output_tokens),
        ))  # fmt: skip
    return out
