"""Metering wiring: journal -> ledger, with crash recovery on start."""

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from tokenmill.core.usage import UsageRecord
from tokenmill.metering.journal import JournalSync, UsageJournal, replay
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
        added = insert_records(self._engine, replay(self._dir))
        if not make_durable(self._engine):
            return added  # keep the segments; the next start replays them again, harmlessly
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
