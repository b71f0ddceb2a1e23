"""Autoscaling on the real engine: scale-to-zero with a cold start that waits instead of
failing, and a replica added under sustained queueing, then drained away when idle."""

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmill.testing import ADMIN_KEY, ServerProcess


@pytest.fixture(scope="module")
def quick() -> Iterator[ServerProcess]:
    """A server whose autoscaler reacts in seconds rather than minutes."""
    env = {"TOKENMILL_SCALE_UP_AFTER_S": "1", "TOKENMILL_SCALE_DOWN_AFTER_S": "2",
           "TOKENMILL_SCALE_TO_ZERO_AFTER_S": "3"}  # fmt: skip
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="tm-scale-")), extra_env=env)
    srv.start(default_model=False)
    yield srv
    srv.stop()


def _deployment(srv: ServerProcess, name: str) -> dict[str, Any]:
    [dep] = [d for d in srv.admin("GET", "/admin/deployments")["data"] if d["name"] == name]
    return dep


def _until(srv: ServerProcess, name: str, pred: Callable[[dict[str, Any]], bool],
           timeout: float = 60) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        dep = _deployment(srv, name)
        if pred(dep) or time.monotonic() > deadline:
            return dep
        time.sleep(0.2)


def _log(srv: ServerProcess) -> str:
    return (srv.data_dir / "logs" / "tokenmill.log").read_text()


def _chat(srv: ServerProcess, key: str, model: str, max_tokens: int = 8) -> httpx.Response:
    body = {"model": model, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Count from one to twenty."}]}  # fmt: skip
    return httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_scaled_to_zero_the_first_request_waits_for_a_cold_start(quick, model_path):
    key = quick.new_tenant_key("cold")
    spec = {"name": "smol-zero", "engine": "llamacpp", "model_path": str(model_path),
            "replicas": 0, "min_replicas": 0, "max_replicas": 2}  # fmt: skip
    assert quick.admin("POST", "/admin/deployments", json=spec)["replicas"] == 0
    try:
        resp = _chat(quick, key, "smol-zero")
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"]["completion_tokens"] > 0
        assert _deployment(quick, "smol-zero")["replicas"] == 1
        # idle past TOKENMILL_SCALE_TO_ZERO_AFTER_S: the replica is stopped ...
        dep = _until(quick, "smol-zero", lambda d: not d["replica_status"])
        assert dep["replicas"] == 0 and not dep["replica_status"], dep
        # ... and the next request starts one again
        assert _chat(quick, key, "smol-zero").status_code == 200
        [row] = quick.tenant_usage("cold", requests=2)
        assert row["requests"] == 2
    finally:
        quick.admin("DELETE", "/admin/deployments/smol-zero")


def test_sustained_queueing_adds_a_replica_and_idle_drains_it_away(quick, model_path):
    key = quick.new_tenant_key("busy")
    spec = {"name": "smol-up", "engine": "llamacpp", "model_path": str(model_path),
            "replicas": 1, "min_replicas": 1, "max_replicas": 2,
            "options": {"parallel": 1, "threads": 1}}  # fmt: skip
    quick.admin("POST", "/admin/deployments", json=spec)
    try:
        _until(quick, "smol-up", lambda d: d["ready_replicas"] == 1)

        async def load() -> list[int]:
            async with httpx.AsyncClient(timeout=120) as client:
                story = [{"role": "user", "content": "Tell a long story."}]
                body = {"model": "smol-up", "max_tokens": 96, "messages": story}
                auth = {"Authorization": f"Bearer {key}"}
                url = quick.url + "/v1/chat/completions"
                resps = await asyncio.gather(
                    *(client.post(url, json=body, headers=auth) for _ in range(12))
                )
                return [r.status_code for r in resps]

        assert asyncio.run(load()) == [200] * 12
        assert "autoscale smol-up: 1 -> 2 replicas" in _log(quick)
        # idle: back to one, the second replica drained and stopped
        dep = _until(quick, "smol-up", lambda d: len(d["replica_status"]) == 1)
        assert dep["replicas"] == 1 and len(dep["replica_status"]) == 1, dep
        assert "autoscale smol-up: 2 -> 1 replicas" in _log(quick)
        [row] = quick.tenant_usage("busy", requests=12)
        assert row["requests"] == 12
    finally:
        quick.admin("DELETE", "/admin/deployments/smol-up")


def test_the_range_can_be_changed_live_and_a_fixed_size_follows_it(quick, model_path):
    spec = {"name": "smol-range", "engine": "llamacpp", "model_path": str(model_path),
            "options": {"parallel": 1, "threads": 1}}  # fmt: skip
    quick.admin("POST", "/admin/deployments", json=spec)
    try:
        view = quick.admin("PATCH", "/admin/deployments/smol-range",
                           json={"min_replicas": 2, "max_replicas": 2})  # fmt: skip
        assert (view["min_replicas"], view["max_replicas"]) == (2, 2)
        dep = _until(quick, "smol-range", lambda d: d["ready_replicas"] == 2)
        assert dep["ready_replicas"] == 2, dep
        quick.admin(
            "PATCH", "/admin/deployments/smol-range", json={"min_replicas": 1, "max_replicas": 1}
        )
        dep = _until(quick, "smol-range", lambda d: len(d["replica_status"]) == 1)
        assert dep["replicas"] == 1 and len(dep["replica_status"]) == 1, dep
        auth = {"Authorization": "Bearer " + ADMIN_KEY}
        bad = httpx.patch(quick.url + "/admin/deployments/smol-range", headers=auth,
                          json={"min_replicas": 3, "max_replicas": 2})  # fmt: skip
        assert bad.status_code == 400 and "min_replicas <= max_replicas" in bad.text
        missing = httpx.patch(quick.url + "/admin/deployments/nope", headers=auth, json={})
        assert missing.status_code == 404
    finally:
        quick.admin("DELETE", "/admin/deployments/smol-range")
