"""Public request traces (see ../shared/traces/README.md for their sources), read once here for
both the fleet simulator (as jobs) and `tokenmill bench` (as requests).

Neither trace names tenants; `tenant_of` derives one from a request's first prefix block
(requests sharing a system prompt belong to the same tenant), which is what a shared-prefix
workload of several customers looks like.
"""

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tokenmill.scheduling.job import Job


@dataclass(frozen=True)
class TraceRow:
    at: float  # seconds from the trace's start, divided by the time scale
    input_tokens: int
    output_tokens: int  # at least 1: every answer has a token
    blocks: tuple[int, ...] = ()  # prefix block ids (Mooncake); equal ids = equal prefix


def read_mooncake(path: Path, time_scale: float = 1.0) -> Iterator[TraceRow]:
    """Mooncake JSONL: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`."""
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            yield TraceRow(
                at=row["timestamp"] / 1000 / time_scale,
                input_tokens=int(row["input_length"]),
                output_tokens=max(1, int(row["output_length"])),
                blocks=tuple(int(h) for h in row["hash_ids"]),
            )


def read_azure(path: Path, time_scale: float = 1.0) -> Iterator[TraceRow]:
    """Azure LLM inference trace CSV: `TIMESTAMP`, `ContextTokens`, `GeneratedTokens`."""
    start: datetime | None = None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            when = datetime.fromisoformat(row["TIMESTAMP"][:26])  # 7 fraction digits in the file
            start = start or when
            yield TraceRow(
                at=(when - start).total_seconds() / time_scale,
                input_tokens=int(row["ContextTokens"]),
                output_tokens=max(1, int(row["GeneratedTokens"])),
            )


def tenant_of(row: TraceRow, tenants: int) -> str:
    return f"tenant-{row.blocks[0] % tenants if row.blocks else 0}"


def mooncake_jobs(
    path: Path, tenants: int = 4, time_scale: float = 1.0, model: str = "m"
) -> Iterator[Job]:
    """The Mooncake trace as scheduling jobs; `time_scale` 2.0 = the same requests twice as
    fast."""
    for i, row in enumerate(read_mooncake(path, time_scale)):
        yield Job(
            id=f"mooncake-{i}",
            tenant=tenant_of(row, tenants),
            model=model,
            input_tokens=row.input_tokens,
            max_output_tokens=row.output_tokens,
            arrived=row.at,
            deadline=math.inf,
            prefix_blocks=row.blocks,
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
