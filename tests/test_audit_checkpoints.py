"""The audit log's checkpoints and stored-text check, on a real SQLite store tampered with by
direct SQL (and the checkpoint files by direct file edits), as an intruder would: a rollback
to an older signed head, a wipe, a checkpoint file deleted or edited, a `detail` with a
duplicate key. Each of these verified as intact before checkpoints (issue 14, finding 3)."""

import json
import shutil
import stat
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tokenmill.security.audit import AuditLog, record_hash
from tokenmill.store.db import make_engine, migrate, sqlite_url

KEY = b"k" * 32


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    return engine


def _started(db: Engine, *files: Path, n: int = 5) -> AuditLog:
    log = AuditLog(db, KEY, files)
    log.start_checkpoints()
    for i in range(n):
        log.append("admin", "tenant.create", "ok", resource=f"tenant/t{i}", detail={"i": i})
    return log


def _sql(db: Engine, statement: str, **params: object) -> None:
    with db.begin() as conn:
        conn.execute(text(statement), params)


def _head(db: Engine) -> dict:
    with db.connect() as conn:
        return dict(conn.execute(text("SELECT seq, hash, mac FROM audit_head")).mappings().one())


def test_a_new_log_begins_its_checkpoint_file_and_verifies(db: Engine, tmp_path: Path):
    cp = tmp_path / "audit-checkpoints.log"
    log = _started(db, cp)
    first = next(log.records())
    assert first["action"] == "audit.checkpoints.started"
    assert first["detail"]["files"] == [cp.name]  # the data directory may move
    assert stat.S_IMODE(cp.stat().st_mode) == 0o600
    assert len(cp.read_text().splitlines()) == 6  # the start record and five appends
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 6
    assert log.start_checkpoints() == []  # begun once only


def test_a_rollback_to_an_older_signed_head_is_detected(db: Engine, tmp_path: Path):
    log = _started(db, tmp_path / "cp.log", n=4)  # records 1..5
    saved = _head(db)  # an intruder keeps a copy of the signed head at record 5
    for i in range(4):
        log.append("admin", "key.create", "ok", detail={"i": i})  # records 6..9
    _sql(db, "DELETE FROM audit_log WHERE seq > :seq", seq=saved["seq"])
    _sql(db, "UPDATE audit_head SET seq = :seq, hash = :hash, mac = :mac", **saved)
    assert AuditLog(db, KEY).verify().ok  # the chain and signed head alone cannot tell
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 6
    assert "rolled back: record 9 was checkpointed" in str(verdict.reason)
    assert "the database ends at record 5" in str(verdict.reason)
    log.append("admin", "key.create", "ok")  # a server that goes on (sme) keeps the evidence
    verdict = log.verify()
    assert not verdict.ok
    assert "checkpoints record 6 after record 9: the log was rolled back" in str(verdict.reason)


def test_a_wipe_is_detected(db: Engine, tmp_path: Path):
    log = _started(db, tmp_path / "cp.log")
    _sql(db, "DELETE FROM audit_log")
    _sql(db, "DELETE FROM audit_head")
    assert AuditLog(db, KEY).verify().ok  # "intact: 0 records" without checkpoints
    verdict = log.verify()
    assert not verdict.ok and "the log was wiped: record 6 was checkpointed" in str(verdict.reason)


def test_a_last_record_rewritten_and_re_signed_with_the_key_is_detected(db: Engine, tmp_path: Path):
    """An intruder holding the key rewrites the newest record and signs a matching head: the
    chain verifies; the checkpoint of that record does not match it."""
    log = _started(db, tmp_path / "cp.log")
    last = list(log.records())[-1]
    forged = {**last, "actor": "someone-else"}
    digest = record_hash(forged)
    _sql(db, "UPDATE audit_log SET actor = 'someone-else', hash = :h WHERE seq = 6", h=digest)
    _sql(db, "UPDATE audit_head SET hash = :h, mac = :m", h=digest, m=log._mac(6, digest))
    assert AuditLog(db, KEY).verify().ok
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 6
    assert "record 6 is not the one checkpointed" in str(verdict.reason)


def test_a_detail_with_a_duplicate_key_is_a_bad_record(db: Engine, tmp_path: Path):
    log = _started(db, tmp_path / "cp.log", n=0)
    log.append("admin", "policy.denied", "denied", detail={"code": "b"})  # record 2
    log.append("admin", "key.create", "ok")
    # the same value to Python (last key wins), another to SQL (first key wins)
    _sql(db, """UPDATE audit_log SET detail = '{"code": "a", "code": "b"}' WHERE seq = 2""")
    with db.connect() as conn:
        sql_reads = conn.execute(
            text("SELECT json_extract(detail, '$.code') FROM audit_log WHERE seq = 2")
        ).scalar()
    assert sql_reads == "a" and next(log.records(after_seq=1))["detail"] == {"code": "b"}
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 2
    assert "not stored as it was written" in str(verdict.reason)


def test_a_detail_respaced_is_a_bad_record(db: Engine, tmp_path: Path):
    log = _started(db, tmp_path / "cp.log", n=3)
    _sql(db, "UPDATE audit_log SET detail = :d WHERE seq = 3", d='{"i":1}')  # was {"i": 1}
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 3


def test_a_deleted_checkpoint_file_is_detected_and_not_begun_again(db: Engine, tmp_path: Path):
    cp = tmp_path / "cp.log"
    log = _started(db, cp)
    cp.unlink()
    verdict = log.verify()
    assert not verdict.ok and "is missing, but the log began it at record 1" in str(verdict.reason)
    assert log.start_checkpoints() == []  # a restart does not hide it
    log.append("admin", "key.create", "ok")  # writes a new file from here...
    verdict = log.verify()  # ...which is not the one the log began
    assert not verdict.ok and "deleted or replaced" in str(verdict.reason)


def test_an_edited_checkpoint_line_is_detected(db: Engine, tmp_path: Path):
    cp = tmp_path / "cp.log"
    log = _started(db, cp)
    lines = cp.read_text().splitlines()
    seq, _, at, mac = lines[2].split("\t")
    lines[2] = "\t".join([seq, "f" * 64, at, mac])
    cp.write_text("\n".join(lines) + "\n")
    verdict = log.verify()
    assert not verdict.ok and "line 3's signature is wrong" in str(verdict.reason)


def test_a_truncated_checkpoint_file_is_caught_by_the_sink(db: Engine, tmp_path: Path):
    """An intruder who can also edit the data directory cuts the file back with the log; the
    sink, on other storage, still holds the newest checkpoint."""
    cp, sink = tmp_path / "cp.log", tmp_path / "sink" / "cp.log"
    sink.parent.mkdir()
    log = _started(db, cp, sink, n=3)  # records 1..4
    saved = _head(db)
    log.append("admin", "key.create", "ok")  # record 5
    assert cp.read_text() == sink.read_text()
    _sql(db, "DELETE FROM audit_log WHERE seq = 5")
    _sql(db, "UPDATE audit_head SET seq = :seq, hash = :hash, mac = :mac", **saved)
    cp.write_text("".join(cp.read_text().splitlines(keepends=True)[:-1]))
    assert AuditLog(db, KEY, [cp]).verify().ok
    verdict = log.verify()
    assert not verdict.ok and f"checkpoint file {sink}: the log was rolled back" in str(
        verdict.reason
    )


def test_a_checkpoint_written_while_verify_runs_is_not_a_rollback(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """An append that commits after `verify` walked the chain writes its checkpoint too: the
    file is then ahead of the head as first read, which is no rollback."""
    log = _started(db, tmp_path / "cp.log", n=3)  # records 1..4
    cp = log._files[0]
    scan, appended = cp.scan, []

    def an_append_then_the_scan():
        if not appended:
            appended.append(log.append("admin", "key.create", "ok")["seq"])
        return scan()

    monkeypatch.setattr(cp, "scan", an_append_then_the_scan)
    verdict = log.verify()
    assert appended == [5] and verdict.ok, verdict.reason


def test_a_data_dir_from_before_checkpoints_begins_them_once(db: Engine, tmp_path: Path):
    old = AuditLog(db, KEY)  # an older version: no checkpoints
    for i in range(3):
        old.append("admin", "tenant.create", "ok", detail={"i": i})
    cp = tmp_path / "cp.log"
    log = AuditLog(db, KEY, [cp])
    unbegun = log.verify()
    assert not unbegun.ok and "no checkpoint covers the 3 records" in str(unbegun.reason)
    (note,) = log.start_checkpoints()
    assert "at record 4" in note and "the 3 records before it were never checkpointed" in note
    assert log.verify().ok
    _sql(db, "DELETE FROM audit_log WHERE seq = 4")
    _sql(db, "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3), "
             "mac = :mac", mac=log._mac(3, next(log.records(after_seq=2))["hash"]))  # fmt: skip
    assert not log.verify().ok  # from its start on, a rollback shows


def test_retention_keeps_the_record_that_a_file_was_begun(db: Engine, tmp_path: Path):
    cp = tmp_path / "cp.log"
    log = _started(db, cp, n=6)  # records 1..7
    fourth = next(r for r in log.records() if r["seq"] == 4)
    assert log.prune(datetime.fromisoformat(fourth["at"])) == 3  # the start record goes
    pruned = list(log.records())[-1]
    assert pruned["action"] == "audit.pruned" and pruned["detail"]["checkpoints"] == {cp.name: 1}
    assert log.verify().ok
    cp.unlink()
    verdict = log.verify()
    assert not verdict.ok and "the log began it at record 1" in str(verdict.reason)


def test_export_still_gives_each_detail_as_json(db: Engine, tmp_path: Path):
    log = _started(db, tmp_path / "cp.log", n=1)
    assert json.loads(json.dumps(list(log.records())))[-1]["detail"] == {"i": 0}


def test_a_moved_data_directory_keeps_its_checkpoints_and_their_record(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    log = _started(_migrated(old), old / "audit-checkpoints.log")
    log.append("admin", "key.create", "ok")
    shutil.copytree(old, new)
    moved = AuditLog(make_engine(sqlite_url(new)), KEY, [new / "audit-checkpoints.log"])
    assert moved.start_checkpoints() == [] and moved.verify().ok
    (new / "audit-checkpoints.log").unlink()
    assert moved.start_checkpoints() == []  # the log began this file: it is missing, not new
    verdict = moved.verify()
    assert not verdict.ok and "is missing, but the log began it at record 1" in str(verdict.reason)


def _migrated(data_dir: Path) -> Engine:
    engine = make_engine(sqlite_url(data_dir))
    migrate(engine)
    return engine
