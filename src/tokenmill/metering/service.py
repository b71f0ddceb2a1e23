"""Metering wiring: journal -> ledger, with crash recovery on start."""

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from tokenmill.core.usage import MeteringHealth, UsageRecord
from tokenmill.metering.journal import JournalSync, UsageJournal, read_segments
from tokenmill.metering.ledger import LedgerWriter, insert_records
from tokenmill.store.db import make_durable

log = logging.getLogger(__name__)


class Metering:
    def __init__(self, engine: Engine, journal_dir: Path, sync: JournalSync = "write") -> None:
        self._engine = engine
        self._dir = journal_dir
        self._sync: JournalSync = sync
        self._journal: UsageJournal | None = None
        self._ledger = LedgerWriter(engine)

    def recover(self) -> int:
        """Replay what a previous run journaled but may not have committed. Returns new rows."""
        self._dir.mkdir(parents=True, exist_ok=True)
        leftovers = sorted(self._dir.glob("usage-*.jsonl"))
        if not leftovers:
            return 0
        found = read_segments(self._dir)
        added = insert_records(self._engine, found.records)
        if not make_durable(self._engine):
            return added  # keep the segments; the next start replays them again, harmlessly
        if found.bad_lines:  # kept for a person to look at, never replayed again
            damaged = self._dir / "damaged"
            damaged.mkdir(exist_ok=True)
            for path in leftovers:
                path.rename(damaged / path.name)
            log.warning(
                "usage journal: %d torn or corrupt line(s) skipped; segments kept in %s",
                found.bad_lines,
                damaged,
            )
        else:
            for path in leftovers:
                path.unlink()
        log.info("usage journal replayed: %d segment(s), %d new record(s)", len(leftovers), added)
        return added

    def on_inserted(self, listener: Callable[[list[UsageRecord]], object]) -> None:
        """Tell `listener` (in a worker thread) about every batch the ledger takes from now."""
        self._ledger.on_inserted = listener

    def start(self) -> None:
        self.recover()
        journal = UsageJournal(self._dir, self._ledger.submit, self._sync)
        self._ledger.on_committed = journal.release_before
        journal.start()
        self._ledger.start()
        self._journal = journal

    @property
    def journal(self) -> UsageJournal:
        if self._journal is None:
            raise RuntimeError("metering not started")
        return self._journal

    def health(self) -> MeteringHealth:
        pending, lag_s = self._ledger.lag
        journal = self._journal
        return MeteringHealth(
            held=journal.held if journal else 0,
            journal_error=journal.error if journal else None,
            ledger_pending=pending,
            ledger_lag_s=lag_s,
            ledger_error=self._ledger.error,
        )

    @property
    def writable(self) -> bool:
        """False while the journal cannot write and records wait in memory."""
        return self._journal is None or self._journal.writable

    async def record(self, record: UsageRecord) -> None:
        await self.journal.append(record)

    def record_nowait(self, record: UsageRecord) -> None:
        self.journal.append_nowait(record)

    async def close(self) -> None:
        if self._journal is None:
            return
        await self._journal.close()
        if await self._ledger.close():
            self._journal.release_before(self._journal.current_segment + 1)
        self._journal = None
