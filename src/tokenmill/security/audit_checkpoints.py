"""Audit checkpoints: the audit log's head, remembered outside the database.

The signed head in the database proves that no record was cut off the end, but a saved copy
of an older head (with the records up to it) is just as well signed: restoring it rolls the
log back unseen, and deleting every record and the head leaves an empty log that verifies.
So every append also writes one line to a file beside the journal (and optionally to a second
file, the sink, on other storage): the record's sequence number and hash, when, and an
HMAC-SHA256 under the audit key over those and the previous line's MAC. The database must
then hold every checkpointed record: reach at least the last line's sequence number, with
that line's hash there. Lines are only appended (mode 0600, O_APPEND), never rewritten.
"""

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
_TAIL = 4096  # a line is under 200 bytes: the last one is in the file's last 4 KiB


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    mac: str


@dataclass(frozen=True)
class Scan:
    """A checkpoint file read whole: its first and last lines, or what is wrong with it."""

    exists: bool
    lines: int = 0
    first: Checkpoint | None = None
    last: Checkpoint | None = None
    problem: str | None = None


Signer = Callable[[str], str]


def line_mac(sign: Signer, seq: int, digest: str, at: str, prev_mac: str) -> str:
    return sign(f"checkpoint:{seq}:{digest}:{at}:{prev_mac}")


def _parse(line: str) -> Checkpoint | None:
    parts = line.split("\t")
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    return Checkpoint(int(parts[0]), parts[1], parts[2], parts[3])


class CheckpointFile:
    """One append-only file of checkpoints. One process writes it (the gateway that owns the
    data directory); each append reads the last line again, so two writers in turn (a
    restart, a drill) keep one chain."""

    def __init__(self, path: Path, sign: Signer, name: str) -> None:
        self.path = path
        self.name = name  # how the audit log names it in the record that begins it
        self._sign = sign

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, seq: int, digest: str, at: str) -> None:
        last = self._last()
        prev = last.mac if last is not None else GENESIS
        mac = line_mac(self._sign, seq, digest, at, prev)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{seq}\t{digest}\t{at}\t{mac}\n".encode())
        finally:
            os.close(fd)

    def _last(self) -> Checkpoint | None:
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - _TAIL))
                tail = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        lines = tail.rstrip("\n").split("\n")
        return _parse(lines[-1]) if lines and lines[-1] else None

    def scan(self) -> Scan:
        """Every line: well formed, sequence numbers rising, each MAC right and chained to
        the line before. The first problem found is reported, naming the line."""
        try:
            f = self.path.open(encoding="utf-8", errors="replace", newline="\n")
        except FileNotFoundError:
            return Scan(exists=False)
        first: Checkpoint | None = None
        last: Checkpoint | None = None
        count = 0
        with f:
            for line in f:
                count += 1
                point = _parse(line.rstrip("\n"))
                if point is None or not line.endswith("\n"):
                    return Scan(True, count, first, last, f"line {count} is malformed")
                prev = last.mac if last is not None else GENESIS
                expected = line_mac(self._sign, point.seq, point.hash, point.at, prev)
                if not hmac.compare_digest(point.mac, expected):
                    return Scan(True, count, first, last, f"line {count}'s signature is wrong")
                if last is not None and point.seq <= last.seq:
                    why = (f"line {count} checkpoints record {point.seq} after record "
                           f"{last.seq}: the log was rolled back or replaced")  # fmt: skip
                    return Scan(True, count, first, last, why)
                first = first or point
                last = point
        return Scan(True, count, first, last)
