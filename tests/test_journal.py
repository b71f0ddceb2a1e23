"""The usage journal and ledger on a real SQLite database: durable, replayable, idempotent."""

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tokenmill.core.ids import new_request_id
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.journal import JournalSync, UsageJournal, frame, read_segments, replay
from tokenmill.metering.ledger import insert_records, usage_totals
from tokenmill.metering.service import Metering
from tokenmill.store.db import make_engine, migrate, sqlite_url


def _db(tmp_path: Path) -> Engine:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    return engine


def _record(tenant: str = "acme", prompt: int = 10, completion: int = 5) -> UsageRecord:
    return UsageRecord(
        request_id=new_request_id(), created_at=time.time(), tenant=tenant, key_id="key_1",
        model="m", deployment="m", replica="m-0", endpoint="chat", stream=False,
        prompt_tokens=prompt, cached_tokens=0, completion_tokens=completion, ttft_ms=1.0,
        duration_ms=2.0, status=200, outcome="ok", finish_reason="stop", usage_source="engine",
    )  # fmt: skip


def test_insert_is_idempotent_by_request_id(tmp_path: Path):
    db = _db(tmp_path)
    rec = _record()
    assert insert_records(db, [rec] * 1000) == 1
    assert insert_records(db, [rec]) == 0
    [total] = usage_totals(db, [])
    assert (total["requests"], total["prompt_tokens"], total["completion_tokens"]) == (1, 10, 5)


def test_replay_skips_a_torn_tail_and_keeps_the_rest(tmp_path: Path):
    journal_dir = tmp_path / "journal"
    records = [_record(prompt=i) for i in range(1, 6)]

    async def write() -> None:
        journal = UsageJournal(journal_dir, lambda recs, seg: None)
        journal.start()
        for r in records:
            await journal.append(r)
        await journal.close()

    asyncio.run(write())
    [segment] = journal_dir.glob("usage-*.jsonl")
    with segment.open("ab") as f:
        f.write(b'{"request_id": "req_torn", "created_at": 1')  # crash mid-write
    assert [r.request_id for r in replay(journal_dir)] == [r.request_id for r in records]


def test_metering_recovers_leftover_journal_exactly_once(tmp_path: Path):
    db = _db(tmp_path)
    journal_dir = tmp_path / "journal"
    records = [_record(prompt=i, completion=2 * i) for i in range(1, 51)]

    async def crash_after_journaling() -> None:
        # The ledger never runs: as if the process died right after the fsync.
        journal = UsageJournal(journal_dir, lambda recs, seg: None)
        journal.start()
        await asyncio.gather(*(journal.append(r) for r in records))
        await journal.close()

    asyncio.run(crash_after_journaling())
    insert_records(db, records[:20])  # some had reached the ledger before the crash
    assert Metering(db, journal_dir).recover() == 30
    assert not list(journal_dir.glob("usage-*.jsonl"))
    [total] = usage_totals(db, [])
    assert total["requests"] == 50
    assert total["prompt_tokens"] == sum(range(1, 51))
    assert total["completion_tokens"] == 2 * sum(range(1, 51))


@pytest.mark.parametrize("sync", ["fsync", "write"])
def test_group_commit_then_ledger_then_segments_released(tmp_path: Path, sync: JournalSync):
    db = _db(tmp_path)
    metering = Metering(db, tmp_path / "journal", sync)
    records = [_record(tenant=f"t{i % 3}") for i in range(300)]

    async def run() -> None:
        metering.start()
        await asyncio.gather(*(metering.record(r) for r in records))
        await metering.close()

    asyncio.run(run())
    rows = {r["tenant"]: r["requests"] for r in usage_totals(db, ["tenant"])}
    assert rows == {"t0": 100, "t1": 100, "t2": 100}
    assert not list((tmp_path / "journal").glob("usage-*.jsonl"))


def test_write_mode_lines_are_in_the_file_before_the_fsync(tmp_path: Path):
    journal_dir = tmp_path / "journal"
    waited, left = _record(), _record()  # a completed response; a stream its client left

    async def run() -> list[str]:
        journal = UsageJournal(journal_dir, lambda recs, seg: None, sync="write")
        await journal.append(waited)  # no flush task running: only write(2) has happened
        journal.append_nowait(left)
        ids = [r.request_id for r in replay(journal_dir)]
        await journal.close()
        return ids

    assert asyncio.run(run()) == [waited.request_id, left.request_id]


def test_a_torn_line_never_swallows_the_record_after_it(tmp_path: Path):
    """A write cut short mid-line (the disk filled), then more records: the checksum skips
    the torn part, the records after it are all read, and the segment is kept aside."""
    journal_dir = tmp_path / "journal"
    before, after = _record(prompt=1), [_record(prompt=i) for i in (2, 3)]

    async def write(records: list[UsageRecord], torn: bool) -> None:
        journal = UsageJournal(journal_dir, lambda recs, seg: None)
        journal.start()
        for r in records:
            await journal.append(r)
        if torn:
            [segment] = journal_dir.glob("usage-*.jsonl")
            whole = frame(_record(prompt=99))
            with segment.open("ab") as f:
                f.write(whole[: len(whole) // 2] + b"\n")  # half a line, ended
        await journal.close()

    asyncio.run(write([before], torn=True))
    asyncio.run(write(after, torn=False))
    found = read_segments(journal_dir)
    assert [r.request_id for r in found.records] == [r.request_id for r in [before, *after]]
    assert found.bad_lines == 1
    db = _db(tmp_path)
    assert Metering(db, journal_dir).recover() == 3
    assert not list(journal_dir.glob("usage-*.jsonl"))
    assert len(list((journal_dir / "damaged").glob("usage-*.jsonl"))) == 2


def test_a_line_whose_checksum_fails_is_not_read(tmp_path: Path):
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    good, flipped = frame(_record(prompt=7)), bytearray(frame(_record(prompt=8)))
    flipped[flipped.index(b'"prompt_tokens":8') + 16] = ord("9")  # one digit rots
    (journal_dir / "usage-00000001.jsonl").write_bytes(good + bytes(flipped))
    found = read_segments(journal_dir)
    assert [r.prompt_tokens for r in found.records] == [7]
    assert found.bad_lines == 1
