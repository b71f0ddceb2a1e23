"""Durable usage journal: append a line, group-fsync, then hand records to the ledger.

A response is released to the client only after its record is in the journal, so `kill -9`
cannot lose the record of anything a client received. Two acknowledgement modes (`JournalSync`):

- `write` (default): the response waits only for write(2) into the kernel, which survives any
  crash of TokenMill itself (kill -9 included); the group fdatasync follows in the background
  within about a millisecond, so a power loss can cost at most that last millisecond's records.
- `fsync`: the response waits for the group fdatasync that covers its record, so the record
  also survives power loss. Concurrent requests share one fdatasync (group commit); on our
  2-vCPU VM the wait costs about 0.8 ms per request (docs/benchmarks.md).

Records reach the ledger only after their fsync. Segments are deleted once the ledger holds every
record in them durably; leftovers are replayed on start, idempotently (unique request id).
"""

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import orjson

from tokenmill.core.usage import UsageRecord

log = logging.getLogger(__name__)

SEGMENT_BYTES = 16 * 1024 * 1024
JournalSync = Literal["fsync", "write"]


class UsageJournal:
    def __init__(
        self,
        directory: Path,
        on_durable: Callable[[list[UsageRecord], int], None],
        sync: JournalSync = "write",
    ):
        self._dir = directory
        self._ack_after_write = sync == "write"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._on_durable = on_durable  # called with (records, segment) once fsynced
        self._segment = max((_seq(p) for p in self._dir.glob("usage-*.jsonl")), default=0) + 1
        self._fd = self._open(self._segment)
        self._written = 0
        self._unsynced: list[UsageRecord] = []
        self._unwritten: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _open(self, seq: int) -> int:
        path = self._dir / f"usage-{seq:08d}.jsonl"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    def append_nowait(self, record: UsageRecord) -> None:
        """Journal without waiting for the fsync: in `write` mode the line is in the kernel on
        return; in `fsync` mode it goes out with the next group write (within a millisecond)."""
        if self._closed:
            raise RuntimeError("usage journal is closed")
        line = _line(record)
        if self._ack_after_write:
            os.write(self._fd, line)  # small O_APPEND write: whole, or an OSError
            self._written += len(line)
        else:
            self._unwritten.append(line)
        self._unsynced.append(record)
        self._wakeup.set()

    async def append(self, record: UsageRecord) -> None:
        """Return once the record is journaled as the sync mode promises."""
        self.append_nowait(record)
        if self._ack_after_write:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    async def _flush_loop(self) -> None:
        while not self._closed or self._unsynced:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self._unsynced:
            return
        records, self._unsynced = self._unsynced, []
        waiters, self._waiters = self._waiters, []
        fd, segment = self._fd, self._segment
        data = b"".join(self._unwritten)
        self._unwritten = []
        self._written += len(data)
        if self._written >= SEGMENT_BYTES:  # rotate; this group still goes to the old segment
            self._segment += 1
            self._fd = self._open(self._segment)
            self._written = 0
        try:
            await asyncio.to_thread(_write_and_sync, fd, data)
        except OSError as exc:  # the disk failed us: the clients must not be told "done"
            log.exception("usage journal write failed")
            for w in waiters:
                if not w.done():
                    w.set_exception(exc)
            raise
        if fd != self._fd:
            os.close(fd)
        for w in waiters:
            if not w.done():
                w.set_result(None)
        self._on_durable(records, segment)

    def release_before(self, segment: int) -> None:
        """The ledger committed everything before `segment`: those files can go."""
        for path in self._dir.glob("usage-*.jsonl"):
            if _seq(path) < segment:
                path.unlink(missing_ok=True)

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        os.close(self._fd)

    @property
    def current_segment(self) -> int:
        return self._segment


def _line(record: UsageRecord) -> bytes:
    return orjson.dumps(record.to_dict()) + b"\n"


def _write_and_sync(fd: int, data: bytes) -> None:
    # One write and one fdatasync per group, off the event loop (syscalls are slow on VMs).
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fdatasync(fd)


def replay(directory: Path) -> Iterator[UsageRecord]:
    """Every record in leftover segments; a torn last line (crash mid-write) is skipped."""
    for path in sorted(directory.glob("usage-*.jsonl"), key=_seq):
        lines = path.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                yield UsageRecord.from_dict(orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError):
                where = "torn tail" if i == len(lines) - 1 else "corrupt line"
                log.warning("usage journal %s: skipping %s %d", path.name, where, i + 1)


def _seq(path: Path) -> int:
    return int(path.stem.split("-")[1])
