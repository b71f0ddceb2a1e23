"""The audit log: append-only and hash-chained.

Each record carries the hash of the one before it, so editing, deleting, inserting or
reordering records breaks the chain at the first record touched. Cutting records off the end
leaves a valid chain; the head (last sequence number and hash) is therefore kept beside it,
signed with a key that lives outside the database (HMAC-SHA256), so truncation shows too.
A saved older head restored with the records up to it, or a wipe, would still verify: every
append is therefore also checkpointed to files outside the database
(`security/audit_checkpoints.py`), and the database must reach the last checkpoint.
What is hashed is what is stored: a `detail` whose stored text is not exactly the JSON the
log wrote for its value (a duplicate key, an edited spacing) is a bad record.
`verify` walks the chain and names the first bad record.
"""

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Text, delete, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from tokenmill.security.audit_checkpoints import CheckpointFile, Scan
from tokenmill.security.keys import Principal
from tokenmill.store.tables import AuditHead, AuditRecord

log = logging.getLogger(__name__)
GENESIS = "0" * 64
_HASHED = ("seq", "at", "actor", "on_behalf_of", "action", "resource", "outcome", "origin",
           "detail", "prev_hash")  # fmt: skip
CHECKPOINTS_STARTED = "audit.checkpoints.started"
PRUNED = "audit.pruned"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int  # records that verified before the first bad one (all, when ok)
    first_bad_seq: int | None = None
    reason: str | None = None


def load_or_create_key(given: str | None, path: Path) -> bytes:
    """The head-signing key: the one given (TOKENMILL_AUDIT_KEY: every gateway writing to one
    database needs the same), else a file only its owner reads, made on first start."""
    if given is not None:
        return given.encode()
    if path.exists():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def record_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps({k: fields[k] for k in _HASHED}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_json(raw: str) -> tuple[Any, bool]:
    """A JSON column's stored text, parsed; and whether that text is exactly what the
    database layer writes for the parsed value (SQLAlchemy's `json.dumps`). Duplicate keys
    (SQL and Python would read different values), reordered keys or changed spacing: not."""
    value = json.loads(raw)
    return value, json.dumps(value) == raw


class AuditLog:
    def __init__(self, engine: Engine, key: bytes, checkpoints: Sequence[Path] = ()) -> None:
        """`checkpoints`: the checkpoint file, then any sinks (a failed write to the first
        fails the append; to a sink, it is logged). The log names the first by its file name
        (the data directory may move) and a sink by its full path."""
        if len(key) < 32:
            raise ValueError("the audit key must be at least 32 bytes")
        self._engine = engine
        self._key = key
        self._files = [
            CheckpointFile(p, self.sign, p.name if i == 0 else str(p))
            for i, p in enumerate(checkpoints)
        ]
        self._lock = threading.Lock()  # one appender at a time in this process

    def sign(self, message: str) -> str:
        """HMAC-SHA256 under the audit key (heads, checkpoints, invoice seals)."""
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def append(
        self,
        actor: str,
        action: str,
        outcome: str,
        *,
        resource: str | None = None,
        on_behalf_of: str | None = None,
        origin: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            with Session(self._engine) as s, s.begin():
                head = s.get(AuditHead, 1, with_for_update=True)
                seq, prev = (head.seq + 1, head.hash) if head is not None else (1, GENESIS)
                fields: dict[str, Any] = {
                    "seq": seq,
                    "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "actor": actor,
                    "on_behalf_of": on_behalf_of,
                    "action": action,
                    "resource": resource,
                    "outcome": outcome,
                    "origin": origin,
                    "detail": detail or {},
                    "prev_hash": prev,
                }
                fields["hash"] = record_hash(fields)
                s.add(AuditRecord(**fields))
                mac = self._mac(seq, fields["hash"])
                if head is None:
                    s.add(AuditHead(id=1, seq=seq, hash=fields["hash"], mac=mac))
                else:
                    head.seq, head.hash, head.mac = seq, fields["hash"], mac
            self._checkpoint(seq, fields["hash"])  # committed: now it may be remembered
        return fields

    def _checkpoint(self, seq: int, digest: str) -> None:
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        for i, f in enumerate(self._files):
            try:
                f.append(seq, digest, at)
            except OSError:
                if i == 0:
                    raise
                log.exception("audit sink %s: checkpoint %d not written", f.path, seq)

    def _mac(self, seq: int, digest: str, kind: str = "") -> str:
        return self.sign(f"{kind}{seq}:{digest}")

    def start_checkpoints(self) -> list[str]:
        """At start: begin each checkpoint file that never began (a new data directory, a new
        sink, or the first start of a version with checkpoints), with a record naming them:
        from that record on, a rollback or wipe shows. A file the log says was begun and is
        gone is not begun again: `verify` reports it. Returns what to log."""
        with Session(self._engine) as s:
            started = self._markers(s)
            head = s.get(AuditHead, 1)
            before = head.seq if head is not None else 0
        new = [f.name for f in self._files if not f.exists() and f.name not in started]
        if not new:
            return []
        rec = self.append("tokenmill", CHECKPOINTS_STARTED, "ok", resource="audit_log",
                          detail={"files": new, "after_seq": before})  # fmt: skip
        return [
            f"audit checkpoints begin in {name} at record {rec['seq']}"
            + (f"; the {before} records before it were never checkpointed" if before else "")
            for name in new
        ]

    @staticmethod
    def _markers(s: Session) -> dict[str, int]:
        """Each checkpoint file the log began, and at which record (retention carries these
        forward in its `audit.pruned` record once the records naming them are gone)."""
        q = (
            select(AuditRecord.seq, AuditRecord.action, sql_cast(AuditRecord.detail, Text))
            .where(AuditRecord.action.in_((CHECKPOINTS_STARTED, PRUNED)))
            .order_by(AuditRecord.seq)
        )
        found: dict[str, int] = {}
        for seq, action, raw in s.execute(q):
            detail, _ = stored_json(raw)
            named = (
                {p: seq for p in detail.get("files", [])}
                if action == CHECKPOINTS_STARTED
                else dict(detail.get("checkpoints", {}))
            )
            for path, at in named.items():
                found[path] = min(found.get(path, at), int(at))
        return found

    def prune(self, before: datetime) -> int:
        """Delete records older than `before` (retention), keeping the chain verifiable: the
        last deleted record's hash becomes the signed base the remaining chain starts from.
        Leaves a record saying so. Returns how many records went."""
        cutoff = before.astimezone(UTC).isoformat(timespec="microseconds")
        with self._lock, Session(self._engine) as s, s.begin():
            head = s.get(AuditHead, 1, with_for_update=True)
            last = s.scalars(select(AuditRecord).where(AuditRecord.at < cutoff)
                             .order_by(AuditRecord.seq.desc()).limit(1)).first()  # fmt: skip
            if head is None or last is None or last.seq >= head.seq:
                return 0  # nothing old enough, or it would empty the log: keep the newest
            carried = {p: n for p, n in self._markers(s).items() if n <= last.seq}
            result = s.execute(delete(AuditRecord).where(AuditRecord.seq <= last.seq))
            gone = cast(CursorResult[Any], result).rowcount
            head.base_seq, head.base_hash = last.seq, last.hash
            head.base_mac = self._mac(last.seq, last.hash, kind="base:")
        detail: dict[str, Any] = {"records": gone, "through_seq": last.seq, "before": cutoff}
        if carried:
            detail["checkpoints"] = carried
        self.append("tokenmill", PRUNED, "ok", resource="audit_log", detail=detail)
        return int(gone)

    def records(self, after_seq: int = 0, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every record in order, read in batches (the log may be long)."""
        for fields, _ in self._rows(after_seq, batch):
            yield fields

    def details(self, action: str) -> list[tuple[int, dict[str, Any]]]:
        """The sequence number and detail of every record of one action, oldest first."""
        q = (
            select(AuditRecord.seq, sql_cast(AuditRecord.detail, Text))
            .where(AuditRecord.action == action)
            .order_by(AuditRecord.seq)
        )
        with Session(self._engine) as s:
            return [(seq, stored_json(raw)[0]) for seq, raw in s.execute(q)]

    def _rows(self, after_seq: int = 0, batch: int = 1000) -> Iterator[tuple[dict[str, Any], bool]]:
        """Records with whether each one's detail is stored exactly as written."""
        columns = [getattr(AuditRecord, k) for k in (*_HASHED, "hash") if k != "detail"]
        while True:
            with Session(self._engine) as s:
                q = (
                    select(*columns, sql_cast(AuditRecord.detail, Text).label("detail"))
                    .where(AuditRecord.seq > after_seq)
                    .order_by(AuditRecord.seq)
                    .limit(batch)
                )
                chunk = [_fields(dict(row)) for row in s.execute(q).mappings()]
            yield from chunk
            if len(chunk) < batch:
                return
            after_seq = chunk[-1][0]["seq"]

    def _base(self) -> tuple[int, str] | Verdict:
        """Where the chain starts: genesis, or the signed point retention pruned up to."""
        with Session(self._engine) as s:
            head = s.get(AuditHead, 1)
        if head is None or head.base_seq == 0:
            return 0, GENESIS
        if not hmac.compare_digest(
            head.base_mac, self._mac(head.base_seq, head.base_hash, "base:")
        ):
            return Verdict(False, 0, head.base_seq + 1, "the retention base's signature is wrong")
        return head.base_seq, head.base_hash

    def verify(self) -> Verdict:
        for _ in range(3):
            base = self._base()
            chain = self._verify_chain(base)
            # retention pruned while the chain was walked: the records it began at are gone
            if chain.ok or isinstance(base, Verdict) or self._base() == base:
                break
        if not chain.ok:
            return chain
        return self._verify_checkpoints(chain.checked)

    def _verify_chain(self, base: tuple[int, str] | Verdict) -> Verdict:
        if isinstance(base, Verdict):
            return base
        start, prev = base
        checked = start
        while True:
            walked = checked
            for rec, canonical in self._rows(after_seq=checked):
                seq, expected = rec["seq"], checked + 1
                if seq != expected:
                    return Verdict(False, checked, expected, f"record {expected} is missing")
                if rec["prev_hash"] != prev:
                    return Verdict(False, checked, seq, "it does not follow the record before it")
                if not canonical:
                    return Verdict(False, checked, seq, "its detail is not stored as it was "
                                   "written (duplicate keys or edited text)")  # fmt: skip
                if record_hash(rec) != rec["hash"]:
                    return Verdict(False, checked, seq, "its content does not match its hash")
                prev, checked = rec["hash"], seq
            # The head is read after the records: a record commits with its head, so one that
            # committed after the last read is walked on, not taken for a cut (a live log).
            with Session(self._engine) as s:
                head = s.get(AuditHead, 1)
            if head is None or head.seq <= checked or checked == walked:
                break
        if head is None:
            if checked:
                return Verdict(False, checked, None, "the signed head is missing")
            return Verdict(True, 0)
        if not hmac.compare_digest(head.mac, self._mac(head.seq, head.hash)):
            return Verdict(False, checked, head.seq, "the head's signature is wrong")
        if checked < head.seq:
            return Verdict(False, checked, checked + 1,
                           f"records {checked + 1}..{head.seq} were cut off")  # fmt: skip
        if checked > head.seq:
            return Verdict(False, head.seq, head.seq + 1, "records follow the signed head")
        if head.hash != prev:
            return Verdict(False, checked - 1, checked, "the last record is not the signed one")
        return Verdict(True, checked)

    def _verify_checkpoints(self, checked: int) -> Verdict:
        """The chain verified; does the database still hold what was checkpointed?"""
        if not self._files:
            return Verdict(True, checked)
        # The files before the head: a checkpoint is written after its record commits, so
        # one written while this runs is not taken for a rollback.
        scans = [(f, f.scan()) for f in self._files]
        with Session(self._engine) as s:
            began = self._markers(s)
            head = s.get(AuditHead, 1)
            for f, scan in scans:
                bad = _against_file(s, head, scan, began.get(f.name))
                if bad is not None:
                    seq, why = bad
                    return Verdict(False, checked, seq, f"checkpoint file {f.path}: {why}")
        return Verdict(True, checked)


def _against_file(
    s: Session, head: AuditHead | None, scan: Scan, began: int | None
) -> tuple[int | None, str] | None:
    """What a checkpoint file says is wrong with the (verified) chain, if anything."""
    if scan.problem is not None:
        return None, scan.problem
    if scan.first is None or scan.last is None:
        gone = "is missing" if not scan.exists else "is empty"
        if began is not None:
            return None, f"{gone}, but the log began it at record {began}"
        if head is not None:
            return None, f"{gone}: no checkpoint covers the {head.seq} records"
        return None
    if began is not None and scan.first.seq != began:
        return None, (f"begins at record {scan.first.seq}, but the log began it at record "
                      f"{began}: it was deleted or replaced")  # fmt: skip
    last = scan.last
    if head is None:
        return 1, (f"the log was wiped: record {last.seq} was checkpointed at {last.at}, "
                   "the database holds no records")  # fmt: skip
    if last.seq > head.seq:
        return head.seq + 1, (f"the log was rolled back: record {last.seq} was checkpointed "
                              f"at {last.at}, the database ends at record {head.seq}")  # fmt: skip
    if last.seq > head.base_seq:
        stored = s.scalar(select(AuditRecord.hash).where(AuditRecord.seq == last.seq))
    else:  # pruned since: the signed base vouches for the record at base_seq only
        stored = head.base_hash if last.seq == head.base_seq else last.hash
    if stored != last.hash:
        return last.seq, f"record {last.seq} is not the one checkpointed at {last.at}"
    return None


def _fields(row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    detail, canonical = stored_json(row["detail"])
    return {**row, "detail": detail}, canonical


def who(principal: Principal | None) -> tuple[str, str | None]:
    """The audit record's actor and on-behalf-of for a principal (None: not authenticated)."""
    if principal is None:
        return "unauthenticated", None
    if principal.agent:
        owner = f"user:{principal.owner}@{principal.tenant}" if principal.owner else None
        return f"agent:{principal.agent} key:{principal.key_id}", owner
    if principal.user:
        return f"user:{principal.user}", f"tenant:{principal.tenant}"
    return f"key:{principal.key_id}", f"tenant:{principal.tenant}"
