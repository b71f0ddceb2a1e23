"""Reconciliation: does the ledger agree with the engines' own counters? (Invoices against
the charges and the ledger, in tokens and money: `billing/invoice_drift.py`.) Drift is
reported, never corrected here: a difference is a question.

Engine side: each engine's own Prometheus counters (prompt, cached and generated tokens),
read by the replica's engine adapter, which alone knows their names (engines/data/matrix.toml).
They start at zero with the process, so each replica is compared with the ledger's records for
it since its process started. An engine that keeps no cached-token counter is compared on prompt
and generated tokens only.
"""

from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.runtime.replica import Replica
from tokenmill.store.tables import UsageRow


@dataclass(frozen=True)
class Counts:
    prompt: int  # all prompt tokens, cached ones included
    cached: int
    completion: int


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
    url = replica.root_url + path
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        headers = replica.auth_headers()
        async with http.get(url, timeout=timeout, headers=headers, ssl=replica.ssl) as resp:
            found = replica.adapter.engine_counts(await resp.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {**view, "status": f"engine unreachable: {type(exc).__name__}"}
    if found is None:
        return {**view, "status": "no engine counters"}
    counts = {  # less TokenMill's own smoke decode: nobody's tokens, never metered
        "prompt": found.prompt - replica.own_prompt_tokens,
        "cached": found.cached,
        "completion": found.completion - replica.own_completion_tokens,
    }
    ledger = ledger_counts(engine, replica.id, replica.started_at)
    drift = {k: asdict(ledger)[k] - v for k, v in counts.items() if v is not None}
    return {
        **view,
        "engine": counts,
        "ledger": asdict(ledger),
        "drift": drift,
        "status": "ok" if not any(drift.values()) else "drift",
    }
