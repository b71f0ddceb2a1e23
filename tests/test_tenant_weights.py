"""Tenant fairness weights: stored, set by an admin (API and CLI), applied to the live scheduler."""

import itertools
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tokenmill.app import create_app
from tokenmill.config import Settings
from tokenmill.core.errors import InvalidRequest, NotFound
from tokenmill.scheduling.core import Limits, SchedulerCore
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.router import ReplicaSlot
from tokenmill.security.accounts import Accounts, KeySpec
from tokenmill.security.keys import KeyRing
from tokenmill.security.roles import Role
from tokenmill.store import db as store_db
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ADMIN_KEY, ServerProcess

_ids = itertools.count()


# --- the scheduler ---------------------------------------------------------------------------


def _job(tenant: str) -> Job:
    return Job(id=f"w{next(_ids)}", tenant=tenant, model="m", input_tokens=100,
               max_output_tokens=20, arrived=0.0, deadline=1e9)  # fmt: skip


def _backlogged_core() -> tuple[SchedulerCore, Job]:
    """One slot, taken by a job of 'a'; both tenants have 400 more waiting."""
    core = SchedulerCore(Limits(queue_per_model=1000, queue_per_tenant=1000))
    core.update_replicas("m", [ReplicaSlot("r0", capacity=1, cache_blocks=64)])
    running = _job("a")
    assert core.submit(running, 0.0) is not None
    for _ in range(400):
        for tenant in ("a", "b"):
            assert core.submit(_job(tenant), 0.0) is None
    return core, running


def _serve(core: SchedulerCore, running: Job, n: int) -> tuple[Counter[str], Job]:
    """Finish the running job and dispatch the next, `n` times: who got the slot."""
    served: Counter[str] = Counter()
    for _ in range(n):
        core.finish(running, 0.0)
        [placed] = core.dispatch(0.0)
        running = placed.job
        served[running.tenant] += 1
    return served, running


def test_set_weight_changes_who_is_served_next():
    core, running = _backlogged_core()
    even, running = _serve(core, running, 100)
    assert abs(even["a"] - even["b"]) <= 1

    before = core.pool("m").queue.counter("a")
    core.set_weight("a", 3)
    assert core.pool("m").queue.counter("a") == before  # normalised units: the past stays
    weighted, _ = _serve(core, running, 200)
    assert abs(weighted["a"] - 150) <= 2 and abs(weighted["b"] - 50) <= 2  # 3:1


def test_set_weight_reaches_queues_made_later_and_must_be_positive():
    core = SchedulerCore()
    core.set_weight("a", 2)
    assert core.pool("new-model").queue.weight("a") == 2
    with pytest.raises(ValueError):
        core.set_weight("a", 0)
    assert core.pool("new-model").queue.weight("a") == 2


# --- the store ---------------------------------------------------------------------------------


def test_accounts_store_weights_and_tell_listeners(engine: Engine):
    accounts = Accounts(engine, KeyRing())
    heard: list[tuple[str, int]] = []
    accounts.on_tenant_change(lambda tenant, weight, _: heard.append((tenant, weight)))

    assert accounts.create_tenant("big", weight=3)["weight"] == 3
    accounts.create_tenant("small")
    assert accounts.update_tenant("small", 2)["weight"] == 2
    assert heard == [("big", 3), ("small", 1), ("small", 2)]

    reopened = Accounts(engine, KeyRing())  # what a restarted server reads
    assert reopened.weights() == {"big": 3, "small": 2}
    assert {t["name"]: t["weight"] for t in reopened.list_tenants()} == {"big": 3, "small": 2}


def test_accounts_refuse_bad_weights_and_unknown_tenants(engine: Engine):
    accounts = Accounts(engine, KeyRing())
    heard: list[tuple[str, int]] = []
    accounts.on_tenant_change(lambda tenant, weight, _: heard.append((tenant, weight)))
    with pytest.raises(InvalidRequest, match="weight"):
        accounts.create_tenant("zero", weight=0)
    accounts.create_tenant("acme")
    with pytest.raises(InvalidRequest, match="weight"):
        accounts.update_tenant("acme", 1001)
    with pytest.raises(NotFound, match="nobody"):
        accounts.update_tenant("nobody", 2)
    assert accounts.weights() == {"acme": 1}
    assert heard == [("acme", 1)]


def test_migration_gives_existing_tenants_weight_one(tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(text("INSERT INTO tenants VALUES ('old', 'Old', '2024-01-01 00:00:00')"))
    migrate(engine)
    assert Accounts(engine, KeyRing()).weights() == {"old": 1}
    engine.dispose()


# --- the live app, in process: the scheduler it runs takes the new weight ----------------------


def test_admin_weight_change_reaches_the_live_scheduler(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, deploy_default_model=False)
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    accounts = Accounts(engine, KeyRing())
    accounts.create_tenant("system")
    accounts.create_tenant("acme", weight=2)
    accounts.create_key("system", "admin", KeySpec(Role.PLATFORM_ADMIN), secret=ADMIN_KEY)
    engine.dispose()

    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        core = app.state.services.proxy._dispatcher.core  # no public handle: it is internal
        queue = core.pool("m").queue
        assert queue.weight("acme") == 2  # loaded at startup
        assert client.patch("/admin/tenants/acme", json={"weight": 5}).status_code == 200
        _until(lambda: queue.weight("acme") == 5)
        assert client.post("/admin/tenants", json={"name": "new", "weight": 7}).status_code == 201
        _until(lambda: queue.weight("new") == 7)


def _until(condition: Any, timeout: float = 5.0) -> None:
    """The change is applied on the app's event loop, a moment after the response."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not applied in time"
        time.sleep(0.01)


# --- a real server: the admin API and the CLI --------------------------------------------------


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with no model: starts in seconds; the admin API is all these tests need."""
    srv = ServerProcess(tmp_path_factory.mktemp("weights")).start(default_model=False)
    yield srv
    srv.stop()


def _admin(srv: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.request(method, srv.url + path, headers=headers, timeout=30, **kwargs)


def _weights(srv: ServerProcess) -> dict[str, int]:
    return {t["name"]: t["weight"] for t in srv.admin("GET", "/admin/tenants")["data"]}


def test_api_create_list_patch_and_restart(bare_server: ServerProcess):
    created = bare_server.admin("POST", "/admin/tenants", json={"name": "gold", "weight": 4})
    assert created["weight"] == 4
    bare_server.admin("POST", "/admin/tenants", json={"name": "plain"})
    weights = _weights(bare_server)
    assert (weights["gold"], weights["plain"]) == (4, 1)

    patched = bare_server.admin("PATCH", "/admin/tenants/plain", json={"weight": 9})
    assert patched["name"] == "plain" and patched["weight"] == 9

    bare_server.stop()
    bare_server.start(default_model=False)
    weights = _weights(bare_server)  # read back from the store at startup
    assert (weights["gold"], weights["plain"]) == (4, 9)


@pytest.mark.parametrize(
    "body", [{"weight": 0}, {"weight": 1001}, {"weight": 1.5}, {}, {"weight": 2, "name": "x"}]
)
def test_api_refuses_bad_weights(bare_server: ServerProcess, body: dict[str, Any]):
    _admin(bare_server, "POST", "/admin/tenants", json={"name": "bad-w"})  # 409 after the first
    _assert_invalid(_admin(bare_server, "PATCH", "/admin/tenants/bad-w", json=body))
    assert _weights(bare_server)["bad-w"] == 1


def test_api_refuses_a_new_tenant_with_weight_zero(bare_server: ServerProcess):
    body = {"name": "zero-w", "weight": 0}
    _assert_invalid(_admin(bare_server, "POST", "/admin/tenants", json=body))
    assert "zero-w" not in _weights(bare_server)


def _assert_invalid(resp: httpx.Response) -> None:
    # Validation errors leave as OpenAI-style 400s in this project, not FastAPI's 422.
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_api_unknown_tenant_and_non_admin(bare_server: ServerProcess):
    resp = _admin(bare_server, "PATCH", "/admin/tenants/nobody", json={"weight": 2})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"

    key = bare_server.new_tenant_key("plain-user")
    resp = httpx.patch(
        bare_server.url + "/admin/tenants/plain-user", json={"weight": 1000},
        headers={"Authorization": f"Bearer {key}"}, timeout=30,
    )  # fmt: skip
    assert resp.status_code == 403
    assert _weights(bare_server)["plain-user"] == 1


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        env=srv.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_create_and_set_weight(bare_server: ServerProcess):
    assert _cli(bare_server, "tenants", "create", "cli-w", "--weight", "3").returncode == 0
    assert _weights(bare_server)["cli-w"] == 3

    done = _cli(bare_server, "tenants", "set-weight", "cli-w", "6")
    assert done.returncode == 0, done.stderr
    assert "weight 6" in done.stdout
    assert _weights(bare_server)["cli-w"] == 6

    bad = _cli(bare_server, "tenants", "set-weight", "cli-w", "0")
    assert bad.returncode == 1 and "weight" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli(bare_server, "tenants", "set-weight", "no-such", "2")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
