"""What TokenMill writes is its user's alone: the data directory 0700, the database, its WAL,
the journal and every log 0600; saved credentials tightened when rewritten."""

import json
import os
import stat
from pathlib import Path

import pytest

from tokenmill.cli.client import save_login
from tokenmill.testing import ServerProcess


def test_the_data_directory_and_everything_in_it_are_private(server: ServerProcess):
    data = server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # made 0755 by the test harness first
    seen = set()
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            path = Path(root) / name
            if path.name in ("server.out", "cli-config"):
                continue  # the harness's own, not TokenMill's
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o077 == 0, f"{path.relative_to(data)} is {oct(mode)}"
            seen.add(path.suffix or path.name)
    assert {".db", ".db-wal", ".log"} <= seen  # the files that matter were there to check


def test_saved_credentials_are_tightened_when_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TOKENMILL_CONFIG_DIR", str(tmp_path))
    existing = tmp_path / "credentials.json"
    existing.write_text("{}")
    existing.chmod(0o644)
    path = save_login("http://127.0.0.1:8400", "tm-" + "k" * 40)
    assert path == existing
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["key"] == "tm-" + "k" * 40
