"""Deployments on the real engine: spawned llama.cpp replicas are supervised and restarted;
an already-running OpenAI-compatible endpoint can be attached; both are metered."""

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from tokenmill.engines.base import ReplicaSpec
from tokenmill.runtime.standalone import standalone_llama_server
from tokenmill.testing import ServerProcess


def _deployment(server: ServerProcess, name: str) -> dict[str, Any]:
    [dep] = [d for d in server.admin("GET", "/admin/deployments")["data"] if d["name"] == name]
    return dep


def _wait(server: ServerProcess, name: str, pred: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep = _deployment(server, name)
        if pred(dep):
            return dep
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached the expected state: {dep}")


def test_crashed_engine_is_restarted_and_serves_again(
    server: ServerProcess, tenant_key, model_path: Path
):
    _, key = tenant_key
    name = "smol-restart"
    spec = {"name": name, "engine": "llamacpp", "model_path": str(model_path)}
    server.admin("POST", "/admin/deployments", json=spec)
    try:
        dep = _wait(server, name, lambda d: d["ready_replicas"] == 1)
        old_pid = dep["replica_status"][0]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        dep = _wait(
            server, name,
            lambda d: d["ready_replicas"] == 1 and d["replica_status"][0]["pid"] != old_pid,
        )  # fmt: skip
        assert dep["replica_status"][0]["restarts"] == 1
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        resp = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert resp.usage is not None and resp.usage.completion_tokens > 0
    finally:
        server.admin("DELETE", f"/admin/deployments/{name}")
    assert name not in [d["name"] for d in server.admin("GET", "/admin/deployments")["data"]]


def test_attached_openai_endpoint_is_relayed_and_metered(
    server: ServerProcess, tenant_key, model_path: Path
):
    """An endpoint that wants a bearer key (here a llama-server of our own) gets the one its
    deployment was given, and the API never shows it."""
    tenant, key = tenant_key
    name = "smol-attached"
    spec = ReplicaSpec("upstream", 0, model_path=str(model_path), options={"parallel": 2})
    with standalone_llama_server(spec) as upstream:
        server.admin("POST", "/admin/deployments", json={
            "name": name, "engine": "openai", "endpoint": upstream.base_url,
            "upstream_model": "upstream", "options": {"api_key": upstream.secret},
        })  # fmt: skip
        try:
            _attached_is_served(server, name, tenant, key)
            assert _deployment(server, name)["options"] == {"api_key": "(set)"}
        finally:
            server.admin("DELETE", f"/admin/deployments/{name}")


def _attached_is_served(server: ServerProcess, name: str, tenant: str, key: str) -> None:
    _wait(server, name, lambda d: d["ready_replicas"] == 1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    resp = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert resp.model == name  # the upstream's name is not leaked
    stream = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert {c.model for c in chunks} == {name}
    usage = next(c.usage for c in chunks if c.usage)
    [row] = server.tenant_usage(tenant, 2, group_by="tenant,model,replica")
    assert row["requests"] == 2
    assert row["model"] == name
    assert row["replica"] == f"{name}-0"  # every token traceable to where it was made
    assert row["completion_tokens"] == resp.usage.completion_tokens + usage.completion_tokens


def test_bad_deployments_are_refused_clearly(server: ServerProcess, tmp_path: Path):
    cases = [
        ({"name": "x", "engine": "llamacpp"}, "needs --path"),
        ({"name": "x", "engine": "llamacpp", "model_path": str(tmp_path / "no.gguf")}, "not found"),
        ({"name": "x", "engine": "openai", "endpoint": "ftp://h"}, "http(s) URL"),
        ({"name": "smollm2-135m", "engine": "openai", "endpoint": "http://127.0.0.1:1"},
         "already exists"),
    ]  # fmt: skip
    auth = {"Authorization": "Bearer " + server.env["TOKENMILL_ADMIN_KEY"]}
    for body, message in cases:
        resp = httpx.post(server.url + "/admin/deployments", json=body, headers=auth)
        assert resp.status_code in (400, 409), resp.text
        assert message in resp.json()["error"]["message"]


def test_a_replica_killed_mid_load_loses_no_request(
    server: ServerProcess, tenant_key, model_path: Path
):
    tenant, key = tenant_key
    name = "smol-pair"
    spec = {"name": name, "engine": "llamacpp", "model_path": str(model_path), "replicas": 2}
    server.admin("POST", "/admin/deployments", json=spec)
    try:
        dep = _wait(server, name, lambda d: d["ready_replicas"] == 2)
        victim = dep["replica_status"][0]
        body = {"model": name, "messages": [{"role": "user", "content": "Count to twenty."}],
                "max_tokens": 24, "temperature": 0}  # fmt: skip

        async def load() -> list[httpx.Response]:
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                sent = [
                    asyncio.create_task(
                        client.post("/v1/chat/completions", json=body, headers=auth)
                    )
                    for _ in range(8)
                ]
                await asyncio.sleep(0.5)  # all 8 slots of the 2 replicas are generating
                os.kill(victim["pid"], signal.SIGKILL)
                return await asyncio.gather(*sent)

        responses = asyncio.run(load())
        # Answers not yet started when the replica died were retried on the other one.
        assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
        [row] = server.tenant_usage(tenant, 8)
        assert row["requests"] == 8
        assert row["completion_tokens"] == sum(r.json()["usage"]["completion_tokens"]
                                               for r in responses)  # fmt: skip
        _wait(server, name, timeout=30, pred=lambda d: d["ready_replicas"] == 2
              and d["replica_status"][0]["pid"] != victim["pid"])  # fmt: skip
    finally:
        server.admin("DELETE", f"/admin/deployments/{name}")


def test_a_replica_refuses_requests_that_bypass_the_gateway(server: ServerProcess):
    """Any local process can reach a replica's port; without the per-replica secret that only
    the gateway holds, it gets nothing: no tokens, no counters."""
    engine = _deployment(server, "smollm2-135m")["replica_status"][0]["endpoint"]
    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2}  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer guess"}, {"X-Api-Key": "guess"}):
        for path in ("/chat/completions", "/completions"):
            resp = httpx.post(engine + path, json=body, headers=headers, timeout=10)
            assert resp.status_code == 401, (path, headers, resp.text)
        metrics = httpx.get(engine.removesuffix("/v1") + "/metrics", headers=headers, timeout=10)
        assert metrics.status_code == 401
    assert "secret" not in str(_deployment(server, "smollm2-135m"))
