"""Reconciliation: does the ledger agree with the engines' own counters? (Invoices against
the charges and the ledger, in tokens and money: `billing/invoice_drift.py`.) Drift is
reported, never corrected here: a difference is a question.

Engine side: llama.cpp's Prometheus counters (`llamacpp:prompt_tokens_total` counts the prompt
tokens it processed, `..._cached_total` those it took from cache, `tokens_predicted_total` the
tokens it generated) start at zero with the process, so each replica is compared with the
ledger's records for it since its process started.
"""

from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.runtime.replica import Replica
from tokenmill.store.tables import UsageRow

_ENGINE_COUNTERS = {
    "llamacpp:prompt_tokens": "uncached_prompt",
    "llamacpp:prompt_tokens_cached": "cached",
    "llamacpp:tokens_predicted": "completion",
}


@dataclass(frozen=True)
class Counts:
    prompt: int  # all prompt tokens, cached ones included
    cached: int
    completion: int


def engine_counts(metrics_text: str) -> Counts | None:
    found: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            name = _ENGINE_COUNTERS.get(sample.name.removesuffix("_total"))
            if name:
                found[name] = int(sample.value)
    if len(found) < len(_ENGINE_COUNTERS):
        return None
    return Counts(found["uncached_prompt"] + found["cached"], found["cached"], found["completion"])


def ledger_counts(engine: Engine, replica_id: str, since: float) -> Counts:
    q = select(
        func.sum(UsageRow.prompt_tokens),
        func.sum(UsageRow.cached_tokens),
        func.sum(UsageRow.completion_tokens),
    ).where(UsageRow.replica == replica_id, UsageRow.created_at >= since)
    with Session(engine) as s:
        prompt, cached, completion = s.execute(q).one()
    return Counts(int(prompt or 0), int(cached or 0), int(completion or 0))


async def replica_drift(
    http: aiohttp.ClientSession, engine: Engine, replica: Replica
) -> dict[str, Any]:
    view: dict[str, Any] = {"replica": replica.id, "started_at": replica.started_at}
    path = replica.adapter.metrics_path
    if path is None or replica.port is None or replica.started_at is None:
        return {**view, "status": "no engine counters"}
    url = replica.adapter.root_url(replica.spec, replica.port) + path
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with http.get(url, timeout=timeout, headers=replica.auth_headers()) as resp:
            counts = engine_counts(await resp.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {**view, "status": f"engine unreachable: {type(exc).__name__}"}
    if counts is None:
        return {**view, "status": "no engine counters"}
    counts = Counts(  # less TokenMill's own smoke decode: nobody's tokens, never metered
        counts.prompt - replica.own_prompt_tokens,
        counts.cached,
        counts.completion - replica.own_completion_tokens,
    )
    ledger = ledger_counts(engine, replica.id, replica.started_at)
    drift = {k: asdict(ledger)[k] - v for k, v in asdict(counts).items()}
    return {
        **view,
        "engine": asdict(counts),
        "ledger": asdict(ledger),
        "drift": drift,
        "status": "ok" if not any(drift.values()) else "drift",
    }
