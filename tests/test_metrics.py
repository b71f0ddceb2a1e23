"""/metrics in Prometheus format, agreeing with what clients were told."""

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tokenmill.testing import ServerProcess


def _samples(server: ServerProcess) -> dict[str, list]:
    text = server.metrics()
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_metrics_match_client_usage(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    auth = {"Authorization": f"Bearer {key}"}
    usage = httpx.post(
        server.url + "/v1/chat/completions", json=body, headers=auth, timeout=60
    ).json()["usage"]
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    url = server.url + "/v1/chat/completions"
    with httpx.stream("POST", url, headers=auth, json=streamed, timeout=60) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: {")]
    stream_usage = json.loads(lines[-1][6:])["usage"]

    samples = _samples(server)

    def value(name: str) -> float:
        return sum(s.value for s in samples[name] if s.labels.get("tenant") == tenant)

    assert value("tokenmill_requests_total") == 2
    assert {s.labels["status"] for s in samples["tokenmill_requests_total"]
            if s.labels["tenant"] == tenant} == {"200"}  # fmt: skip
    assert (
        value("tokenmill_prompt_tokens_total")
        == usage["prompt_tokens"] + stream_usage["prompt_tokens"]
    )
    assert value("tokenmill_completion_tokens_total") == (
        usage["completion_tokens"] + stream_usage["completion_tokens"]
    )
    assert any(s.labels.get("model") == "smollm2-135m"
               for s in samples["tokenmill_time_to_first_token_seconds_bucket"])  # fmt: skip
    assert "tokenmill_request_duration_seconds_bucket" in samples
    in_flight = [s.value for s in samples["tokenmill_requests_in_flight"]
                 if s.labels.get("model") == "smollm2-135m"]  # fmt: skip
    assert in_flight == [0.0]  # both requests finished, and so did their accounting
    ready = [
        s.value
        for s in samples["tokenmill_replica_state"]
        if s.labels["replica"] == "smollm2-135m-0" and s.labels["state"] == "ready"
    ]
    assert ready == [1.0]
    assert key not in server.metrics()


def test_bad_requests_leave_nothing_in_flight(server: ServerProcess, tenant_key):
    """Refused by the gateway (never counted in) or by the engine (counted in, and out again)."""
    tenant, key = tenant_key
    auth = {"Authorization": f"Bearer {key}"}
    url = server.url + "/v1/chat/completions"
    too_long = [{"role": "user", "content": "hello " * 20_000}]  # past the engine's context
    for body in (
        {"model": "smollm2-135m", "messages": "hi"},
        {"model": "smollm2-135m", "messages": too_long},
        {"model": "smollm2-135m", "messages": too_long, "stream": True},
    ):
        resp = httpx.post(url, json=body, headers=auth, timeout=60)
        assert resp.status_code == 400, resp.text

    samples = _samples(server)
    statuses = [(s.labels["status"], s.value) for s in samples["tokenmill_requests_total"]
                if s.labels["tenant"] == tenant]  # fmt: skip
    assert statuses == [("400", 2.0)]  # the two the engine refused
    in_flight = [s.value for s in samples["tokenmill_requests_in_flight"]
                 if s.labels.get("model") == "smollm2-135m"]  # fmt: skip
    assert in_flight == [0.0]
