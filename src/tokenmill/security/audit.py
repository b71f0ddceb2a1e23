"""The audit log: append-only and hash-chained.

Each record carries the hash of the one before it, so editing, deleting, inserting or
reordering records breaks the chain at the first record touched. Cutting records off the end
leaves a valid chain; the head (last sequence number and hash) is therefore kept beside it,
signed with a key that lives outside the database (HMAC-SHA256), so truncation shows too.
`verify` walks the chain and names the first bad record.
"""

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, select
from sqlalchemy.orm import Session

from tokenmill.security.keys import Principal
from tokenmill.store.tables import AuditHead, AuditRecord

GENESIS = "0" * 64
_HASHED = ("seq", "at", "actor", "on_behalf_of", "action", "resource", "outcome", "origin",
           "detail", "prev_hash")  # fmt: skip


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


class AuditLog:
    def __init__(self, engine: Engine, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the audit key must be at least 32 bytes")
        self._engine = engine
        self._key = key
        self._lock = threading.Lock()  # one appender at a time in this process

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
        with self._lock, Session(self._engine) as s, s.begin():
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
        return fields

    def _mac(self, seq: int, digest: str, kind: str = "") -> str:
        msg = f"{kind}{seq}:{digest}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

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
            result = s.execute(delete(AuditRecord).where(AuditRecord.seq <= last.seq))
            gone = cast(CursorResult[Any], result).rowcount
            head.base_seq, head.base_hash = last.seq, last.hash
            head.base_mac = self._mac(last.seq, last.hash, kind="base:")
        self.append(
            "tokenmill",
            "audit.pruned",
            "ok",
            resource="audit_log",
            detail={"records": gone, "through_seq": last.seq, "before": cutoff},
        )
        return int(gone)

    def records(self, after_seq: int = 0, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every record in order, read in batches (the log may be long)."""
        while True:
            with Session(self._engine) as s:
                rows = s.scalars(select(AuditRecord).where(AuditRecord.seq > after_seq)
                                 .order_by(AuditRecord.seq).limit(batch)).all()  # fmt: skip
                chunk = [_fields(r) for r in rows]
            yield from chunk
            if len(chunk) < batch:
                return
            after_seq = chunk[-1]["seq"]

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
        base = self._base()
        if isinstance(base, Verdict):
            return base
        start, prev = base
        expected, checked = start + 1, start
        for rec in self.records(after_seq=start):
            seq = rec["seq"]
            if seq != expected:
                return Verdict(False, checked, expected, f"record {expected} is missing")
            if rec["prev_hash"] != prev:
                return Verdict(False, checked, seq, "it does not follow the record before it")
            if record_hash(rec) != rec["hash"]:
                return Verdict(False, checked, seq, "its content does not match its hash")
            prev, expected, checked = rec["hash"], seq + 1, checked + 1
        with Session(self._engine) as s:
            head = s.get(AuditHead, 1)
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


def _fields(row: AuditRecord) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (*_HASHED, "hash")}


def who(principal: Principal | None) -> tuple[str, str | None]:
    """The audit record's actor and on-behalf-of for a principal (None: not authenticated)."""
    if principal is None:
        return "unauthenticated", None
    if principal.agent:
        owner = f"user:{principal.owner}@{principal.tenant}" if principal.owner else None
        return f"agent:{principal.agent} key:{principal.key_id}", owner
    return f"key:{principal.key_id}", f"tenant:{principal.tenant}"
