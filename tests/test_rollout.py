"""A rolling update under a bounded real load: every request is answered, the replicas end on
the new spec, and a new spec that cannot start leaves the old replicas serving."""

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


def _deployment(srv: ServerProcess) -> dict[str, Any]:
    [view] = [d for d in srv.admin("GET", "/admin/deployments")["data"] if d["name"] == MODEL]
    return view


def _until(srv: ServerProcess, check, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = _deployment(srv)
        if check(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


class Load:
    """A few clients sending chat requests until told to stop (bounded by `stop`)."""

    def __init__(self, srv: ServerProcess, key: str, clients: int = 3) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(srv, key, i)) for i in range(clients)
        ]

    def _client(self, srv: ServerProcess, key: str, i: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=120,
                          headers={"Authorization": f"Bearer {key}"}) as http:  # fmt: skip
            n = 0
            while not self._stop.is_set():
                ask = [{"role": "user", "content": f"Count to {i + n % 5}."}]
                body = {"model": MODEL, "max_tokens": 8, "stream": n % 2 == 1, "messages": ask}
                resp = http.post("/v1/chat/completions", json=body)
                self.statuses.append(resp.status_code)
                n += 1

    def wait_for(self, answers: int, limit_s: float) -> None:
        """Until `answers` requests in all were answered (a slow machine serves fewer per s)."""
        deadline = time.monotonic() + limit_s
        while len(self.statuses) < answers and time.monotonic() < deadline:
            time.sleep(0.1)

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("rollout")).start()
    server.admin("PATCH", f"/admin/deployments/{MODEL}", json={"min_replicas": 2,
                                                                "max_replicas": 2})  # fmt: skip
    _until(server, lambda d: d["ready_replicas"] == 2, 120)
    yield server
    server.stop()


def test_a_rolling_update_under_load_fails_no_request(srv: ServerProcess):
    key = srv.new_tenant_key("rolling")
    before = {r["id"] for r in _deployment(srv)["replica_status"]}
    with Load(srv, key) as load:
        time.sleep(2.0)
        started = srv.admin("POST", f"/admin/deployments/{MODEL}/rollout",
                            json={"options": {"ctx_per_slot": 4096}})  # fmt: skip
        assert started["rollout"]["state"] == "rolling"
        view = _until(srv, lambda d: d["rollout"]["state"] != "rolling", 300)
        assert view["rollout"] == {**view["rollout"], "state": "done", "replaced": 2, "of": 2}
        view = _until(srv, lambda d: not {r["id"] for r in d["replica_status"]} & before, 120)
        load.wait_for(len(load.statuses) + 6, 60)  # load on the new replicas alone
    after = {r["id"] for r in view["replica_status"]}
    assert len(after) == 2 and not after & before  # every replica replaced
    assert view["options"]["ctx_per_slot"] == 4096
    assert [r["state"] for r in view["replica_status"]] == ["ready", "ready"]
    assert len(load.statuses) > 10 and set(load.statuses) == {200}  # none failed
    [row] = srv.tenant_usage("rolling", len(load.statuses))
    assert row["requests"] == len(load.statuses)  # and every one metered


def test_a_spec_that_cannot_start_stops_the_rollout_and_the_old_replicas_serve(
    srv: ServerProcess, tmp_path: Path
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 4096)  # a header and nothing a model needs
    key = srv.new_tenant_key("broken-rollout")
    serving = {r["id"] for r in _deployment(srv)["replica_status"]}
    options = _deployment(srv)["options"]
    with Load(srv, key, clients=2) as load:
        srv.admin("POST", f"/admin/deployments/{MODEL}/rollout",
                  json={"model_path": str(broken)})  # fmt: skip
        view = _until(srv, lambda d: d["rollout"]["state"] != "rolling", 300)
    assert view["rollout"]["state"] == "failed" and view["rollout"]["replaced"] == 0
    assert "failed to start" in view["rollout"]["error"]
    assert {r["id"] for r in view["replica_status"]} == serving  # the failed one is gone
    assert view["model_path"] != str(broken) and view["options"] == options  # spec restored
    assert load.statuses and set(load.statuses) == {200}
