"""Durable usage journal: append a framed line, group-fsync, then hand records to the ledger.

A response is released to the client only after its record is in the journal, so `kill -9`
cannot lose the record of anything a client received. Two acknowledgement modes (`JournalSync`):

- `write` (default): the response waits only for write(2) into the kernel, which survives any
  crash of TokenMill itself (kill -9 included); the group fdatasync follows in the background
  within about a millisecond, so a power loss can cost at most that last millisecond's records.
- `fsync`: the response waits for the group fdatasync that covers its record, so the record
  also survives power loss. Concurrent requests share one fdatasync (group commit); on our
  2-vCPU VM the wait costs about 0.8 ms per request (docs/benchmarks.md).

Each line is `<crc32 hex> <json>`: a torn write fails its checksum and is skipped, never read as
a record. A write that fails (a full disk) is cut back off the file, so the next record starts
on a line of its own, and its record is held in memory and written again until the disk takes
it; the caller hears `NotJournaled` and decides whether to serve (see `gateway/proxy.py`).

Records reach the ledger only after their fsync. Segments are deleted once the ledger holds every
record in them durably; leftovers are replayed on start, idempotently (unique request id).
"""

import asyncio
import contextlib
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from tokenmill.core.usage import UsageRecord

log = logging.getLogger(__name__)

SEGMENT_BYTES = 16 * 1024 * 1024
RETRY_S = 0.5  # how often records held in memory try the disk again
JournalSync = Literal["fsync", "write"]


class NotJournaled(Exception):
    """The record is not on disk yet: it is held in memory and retried until the disk takes it.
    A `kill -9` before then loses it."""


@dataclass
class _Held:
    """Records whose write failed, in arrival order, and why."""

    records: list[UsageRecord]
    lines: list[bytes]
    error: OSError
    since: float  # monotonic
    logged_at: float


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
        self._size = 0  # bytes of whole lines in the current segment
        self._unsynced: list[UsageRecord] = []
        self._unwritten: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._held: _Held | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _open(self, seq: int) -> int:
        path = self._dir / f"usage-{seq:08d}.jsonl"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    @property
    def writable(self) -> bool:
        """False while records wait in memory for the disk."""
        return self._held is None

    @property
    def held(self) -> int:
        return len(self._held.records) if self._held else 0

    @property
    def error(self) -> str | None:
        return _describe(self._held.error) if self._held else None

    def append_nowait(self, record: UsageRecord) -> None:
        """Journal without waiting for the fsync: in `write` mode the line is in the kernel on
        return; in `fsync` mode it goes out with the next group write (within a millisecond).
        Raises `NotJournaled` (the record is held and retried) when the disk refuses it."""
        if self._closed:
            raise RuntimeError("usage journal is closed")
        line = frame(record)
        if self._held is not None:  # keep order behind the records already waiting
            self._hold([record], [line], self._held.error)
            raise NotJournaled(self.error)
        if self._ack_after_write:
            try:
                _append(self._fd, line, self._size)
            except OSError as exc:
                self._hold([record], [line], exc)
                raise NotJournaled(_describe(exc)) from exc
            self._size += len(line)
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
            with contextlib.suppress(TimeoutError):  # held records: try again in a while
                await asyncio.wait_for(self._wakeup.wait(), RETRY_S if self._held else None)
            self._wakeup.clear()
            await self._flush()
            if self._held is not None:
                await self._write_held()

    async def _flush(self) -> None:
        if not self._unsynced:
            return
        records, self._unsynced = self._unsynced, []
        waiters, self._waiters = self._waiters, []
        lines, self._unwritten = self._unwritten, []
        fd, segment, size = self._fd, self._segment, self._size
        data = b"".join(lines)  # empty in `write` mode: already written
        self._size += len(data)
        if self._size >= SEGMENT_BYTES:  # rotate; this group still goes to the old segment
            self._segment += 1
            self._fd = self._open(self._segment)
            self._size = 0
        try:
            await asyncio.to_thread(_append_and_sync, fd, data, size)
        except OSError as exc:  # the disk failed us: the clients must not be told "done"
            if fd == self._fd:
                self._size = size
            # In `write` mode the lines are in the file but may not be on the disk: written
            # again, they are at worst read twice, and the ledger keeps one (by request id).
            self._hold(records, lines or [frame(r) for r in records], exc)
            for w in waiters:
                if not w.done():
                    w.set_exception(NotJournaled(_describe(exc)))
            return
        finally:
            if fd != self._fd:
                os.close(fd)
        for w in waiters:
            if not w.done():
                w.set_result(None)
        self._on_durable(records, segment)

    def _hold(self, records: list[UsageRecord], lines: list[bytes], exc: OSError) -> None:
        if self._held is None:
            now = time.monotonic()
            self._held = _Held([], [], exc, now, now)
            log.error(
                "usage journal cannot write (%s): records are held in memory and retried "
                "every %.1f s; a crash before the disk has room again loses them",
                _describe(exc),
                RETRY_S,
            )
            self._wakeup.set()  # the flush loop now waits RETRY_S at a time, then retries
        self._held.records.extend(records)
        self._held.lines.extend(lines)
        self._held.error = exc

    async def _write_held(self) -> None:
        held = self._held
        assert held is not None
        fd, segment, size = self._fd, self._segment, self._size
        records, data = list(held.records), b"".join(held.lines)
        try:
            await asyncio.to_thread(_append_and_sync, fd, data, size)
        except OSError as exc:
            held.error = exc
            if time.monotonic() - held.logged_at >= 60:
                held.logged_at = time.monotonic()
                log.error(
                    "usage journal still cannot write (%s): %d record(s) held for %.0f s",
                    _describe(exc),
                    len(held.records),
                    time.monotonic() - held.since,
                )
            return
        self._size += len(data)
        del held.records[: len(records)], held.lines[: len(records)]
        if not held.records:  # nothing arrived while the write ran: writable again
            self._held = None
            log.warning(
                "usage journal writes again: %d held record(s) written after %.1f s",
                len(records),
                time.monotonic() - held.since,
            )
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
        if self._held is not None:  # one last try, then say exactly what is lost
            await self._write_held()
        if self._held is not None:
            for record in self._held.records:
                log.critical("usage record lost (disk full at shutdown): %s", frame(record))
        os.close(self._fd)

    @property
    def current_segment(self) -> int:
        return self._segment


def frame(record: UsageRecord) -> bytes:
    payload = orjson.dumps(record.to_dict())
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _append(fd: int, data: bytes, size: int) -> None:
    """Write all of `data` at the end of the file, which holds `size` bytes of whole lines; on
    failure cut what was written off again, so no record is ever glued to a torn one."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:  # cannot cut: end the torn line, its checksum will skip it
            os.write(fd, b"\n")
        raise


def _append_and_sync(fd: int, data: bytes, size: int) -> None:
    # One write and one fdatasync per group, off the event loop (syscalls are slow on VMs).
    _append(fd, data, size)
    os.fdatasync(fd)


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@dataclass
class Replay:
    records: list[UsageRecord]
    bad_lines: int  # failed their checksum (a torn write) or did not parse


def read_segments(directory: Path) -> Replay:
    """Every record in leftover segments, in order; torn and corrupt lines are counted and
    skipped, never merged with the line after them."""
    out = Replay([], 0)
    for path in sorted(directory.glob("usage-*.jsonl"), key=_seq):
        for i, line in enumerate(path.read_bytes().split(b"\n")):
            if not line:
                continue
            record = _parse(line)
            if record is None:
                out.bad_lines += 1
                log.warning(
                    "usage journal %s: line %d is torn or corrupt: skipped", path.name, i + 1
                )
            else:
                out.records.append(record)
    return out


def replay(directory: Path) -> Iterator[UsageRecord]:
    yield from read_segments(directory).records


def _parse(line: bytes) -> UsageRecord | None:
    try:
        if line.startswith(b"{"):  # written before lines carried a checksum
            return UsageRecord.from_dict(orjson.loads(line))
        crc, _, payload = line.partition(b" ")
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
            return None
        return UsageRecord.from_dict(orjson.loads(payload))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


def _seq(path: Path) -> int:
    return int(path.stem.split("-")[1])
