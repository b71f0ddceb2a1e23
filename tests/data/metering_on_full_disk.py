"""Metering (journal and SQLite ledger) on a disk that fills up and then has room again.

Run on a small tmpfs (tokenmill.testing.run_on_small_disk); prints one JSON object.
argv: <directory on the small disk> <journal sync mode: write|fsync> [journal directory]
(a journal directory elsewhere leaves only the ledger's database on the disk that fills)
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from tokenmill.core.ids import new_request_id
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.journal import NotJournaled
from tokenmill.metering.ledger import usage_totals
from tokenmill.metering.service import Metering
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import fill_disk


def record(i: int) -> UsageRecord:
    return UsageRecord(
        request_id=new_request_id(), created_at=time.time(), tenant="acme", key_id="key_1",
        model="m", deployment="m", replica="m-0", endpoint="chat", stream=False,
        prompt_tokens=i, cached_tokens=0, completion_tokens=1, ttft_ms=1.0, duration_ms=2.0,
        status=200, outcome="ok", finish_reason="stop", usage_source="engine",
    )  # fmt: skip


def leftovers(journal: Path) -> list[str]:
    return sorted(p.name for p in journal.rglob("*") if p.is_file())


async def main(root: Path, sync: str, journal: Path) -> dict[str, object]:
    db = make_engine(sqlite_url(root))
    migrate(db)
    metering = Metering(db, journal, sync)  # type: ignore[arg-type]
    metering.start()
    sent: list[UsageRecord] = []
    refused = 0

    async def send(n: int) -> None:
        nonlocal refused
        for _ in range(n):
            rec = record(len(sent) + 1)
            sent.append(rec)  # every one a client would have received (the sme profile)
            try:
                await metering.record(rec)
            except NotJournaled:
                refused += 1

    await send(200)
    await asyncio.sleep(0.3)  # the ledger takes them
    filler = fill_disk(root)
    await send(300)  # the journal and the database both meet the full disk
    await asyncio.sleep(3)  # long enough for the ledger to fail and retry a few times
    during = metering.health()
    in_ledger_while_full = usage_totals(db, [])[0]["requests"]
    filler.unlink()  # room again
    deadline = time.monotonic() + 30
    while metering.health().problem is not None or metering.health().ledger_pending:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    after = metering.health()
    await send(50)
    await metering.close()
    [total] = usage_totals(db, [])
    return {
        "sent": len(sent),
        "refused_while_full": refused,
        "held_while_full": during.held,
        "problem_while_full": during.problem,
        "ledger_pending_while_full": during.ledger_pending,
        "in_ledger_while_full": in_ledger_while_full,
        "problem_after": after.problem,
        "ledger_requests": total["requests"],
        "ledger_prompt_tokens": total["prompt_tokens"],
        "expected_prompt_tokens": sum(r.prompt_tokens for r in sent),
        "journal_left": leftovers(journal),
    }


if __name__ == "__main__":
    root = Path(sys.argv[1])
    journal = Path(sys.argv[3]) if len(sys.argv) > 3 else root / "journal"
    print(json.dumps(asyncio.run(main(root, sys.argv[2], journal))))
