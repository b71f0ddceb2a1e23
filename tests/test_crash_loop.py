"""An engine that never gets ready is given up on, loudly: its deployment fails with the reason,
`doctor` fails, and requests get a 503 that says why, instead of a restart loop forever."""

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.runtime import supervisor
from tokenmill.runtime.replica import Replica, ReplicaState
from tokenmill.testing import ServerProcess

CRASHING_ENGINE = Path(__file__).parent / "data" / "crashing_engine.py"


@pytest.fixture(scope="module")
def crashing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server whose llama-server loads, answers /health, and dies at the first decode."""
    srv = ServerProcess(
        tmp_path_factory.mktemp("crashing"),
        extra_env={"TOKENMILL_LLAMA_SERVER": str(CRASHING_ENGINE), "CRASH_AT": "decode"},
    )
    srv.start(timeout=60, allow_failed=True)
    yield srv
    srv.stop()


def test_a_crash_looping_engine_fails_its_deployment_with_the_reason(
    crashing_server: ServerProcess,
):
    [dep] = crashing_server.admin("GET", "/admin/deployments")["data"]
    assert dep["state"] == "failed"
    [replica] = dep["replica_status"]
    assert replica["state"] == "failed"
    assert replica["restarts"] == supervisor.CRASH_LOOP_LIMIT - 1  # tried 3 times, then stopped
    failure = dep["failure"]
    assert "failed to start 3 times in a row" in failure
    assert "killed by SIGSEGV" in failure
    assert "first decode" in failure  # the hint
    assert "fake engine: crashing at first decode" in failure  # the engine's last words
    out = _output_once_settled(crashing_server)
    assert "model smollm2-135m FAILED and is not served" in out
    assert "TokenMill is up, but serves no model: its deployments failed" in out
    assert "TokenMill is serving" not in out


def _output_once_settled(srv: ServerProcess) -> str:
    """What `tokenmill up` printed, once its banner is out (it polls the replicas on its own
    clock, a moment behind the admin API)."""
    deadline = time.monotonic() + 30
    while "Ctrl-C stops TokenMill" not in srv.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    return srv.output()


def test_requests_to_a_failed_deployment_get_a_503_that_says_why(
    crashing_server: ServerProcess,
):
    key = crashing_server.new_tenant_key("crashed-tenant")
    resp = httpx.post(
        crashing_server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert resp.status_code == 503
    message = resp.json()["error"]["message"]
    assert "'smollm2-135m' failed to start and is down" in message
    assert "killed by SIGSEGV" in message


def test_doctor_fails_on_a_failed_deployment(crashing_server: ServerProcess):
    result = subprocess.run(
        [sys.executable, "-m", "tokenmill", "doctor", "--json"],
        env=crashing_server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "models-serving" in result.stdout
    assert "smollm2-135m failed" in result.stdout


async def test_an_engine_that_dies_as_it_starts_is_given_up_on(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The supervisor alone (no server): SIGSEGV at start, three times, then FAILED."""
    monkeypatch.setenv("TOKENMILL_LLAMA_SERVER", str(CRASHING_ENGINE))
    monkeypatch.setenv("CRASH_AT", "start")
    replica = Replica(
        ReplicaSpec("crasher", 0, model_path=str(model_path)), adapter=LlamaCppAdapter()
    )
    async with aiohttp.ClientSession() as http:
        sup = supervisor.ReplicaSupervisor(replica, http, tmp_path)
        sup.start()
        for _ in range(200):
            if replica.state is ReplicaState.FAILED:
                break
            await asyncio.sleep(0.1)
        await sup.stop()
    assert replica.failure is not None, replica.last_error
    assert "killed by SIGSEGV before ready" in replica.failure
    assert "fake engine: crashing at start" in replica.failure
    assert replica.restarts == supervisor.CRASH_LOOP_LIMIT - 1


def test_models_list_shows_the_failure(crashing_server: ServerProcess):
    result = subprocess.run(
        [sys.executable, "-m", "tokenmill", "models", "list"],
        env={**crashing_server.env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout
    assert "smollm2-135m FAILED:" in " ".join(result.stdout.split())
