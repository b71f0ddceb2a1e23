"""Public request traces as scheduling jobs (see ../shared/traces/README.md for their sources).

Neither trace names tenants; `mooncake_jobs` derives one from the request's first prefix block
(requests sharing a system prompt belong to the same tenant), which is what a shared-prefix
workload of several customers looks like.
"""

import csv
import json
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from tokenmill.scheduling.job import Job

MOONCAKE_BLOCK_TOKENS = 512


def mooncake_jobs(
    path: Path, tenants: int = 4, time_scale: float = 1.0, model: str = "m"
) -> Iterator[Job]:
    """Mooncake JSONL (`timestamp` ms, `input_length`, `output_length`, `hash_ids`); arrival
    times are divided by `time_scale` (2.0 = the same requests at twice the rate)."""
    with path.open() as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            blocks = tuple(int(h) for h in row["hash_ids"])
            at = row["timestamp"] / 1000 / time_scale
            yield Job(
                id=f"mooncake-{i}",
                tenant=f"tenant-{blocks[0] % tenants}" if blocks else "tenant-0",
                model=model,
                input_tokens=int(row["input_length"]),
                max_output_tokens=max(1, int(row["output_length"])),
                arrived=at,
                deadline=math.inf,
                prefix_blocks=blocks,
            )


def azure_jobs(path: Path, time_scale: float = 1.0, model: str = "m") -> Iterator[Job]:
    """Azure LLM inference trace CSV (`TIMESTAMP`, `ContextTokens`, `GeneratedTokens`); no
    prefix structure, one tenant."""
    start: datetime | None = None
    with path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            when = datetime.fromisoformat(row["TIMESTAMP"][:26])
            start = start or when
            yield Job(
                id=f"azure-{i}",
                tenant="tenant-0",
                model=model,
                input_tokens=int(row["ContextTokens"]),
                max_output_tokens=max(1, int(row["GeneratedTokens"])),
                arrived=(when - start).total_seconds() / time_scale,
                deadline=math.inf,
            )


def ideal_hit_rate(jobs: list[Job]) -> float:
    """Share of prefix blocks already seen earlier in the trace: what an infinite shared cache
    would hit, and so the ceiling for any router."""
    seen: set[int] = set()
    hits = total = 0
    for job in jobs:
        for block in job.prefix_blocks:
            total += 1
            hits += block in seen
            seen.add(block)
    return hits / total if total else 0.0
