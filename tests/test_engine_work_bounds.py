"""Every way to make the engine work is metered, or refused before the engine sees it: a flood
of tiny messages (the engine's slot held for minutes, recorded as a 400 with no tokens) is
refused; several choices are metered choice by choice (tests/test_choices.py). Real engine."""

import httpx
import pytest

from tokenmill.api.schemas import MAX_MESSAGES
from tokenmill.testing import ServerProcess


def _post(server: ServerProcess, key: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(
        server.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


@pytest.mark.parametrize("prompt", ["Hello", ["Hello"], [[9906, 11]], [9906, 11]])
def test_one_prompt_in_any_shape_is_served(server: ServerProcess, tenant_key, prompt: object):
    tenant, key = tenant_key
    body = {"model": "smollm2-135m", "prompt": prompt, "max_tokens": 3}
    resp = _post(server, key, "/v1/completions", body)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["choices"]) == 1
    [row] = server.tenant_usage(tenant, 1)
    assert row["completion_tokens"] == resp.json()["usage"]["completion_tokens"]


@pytest.mark.parametrize("count", [MAX_MESSAGES + 1, 100_000])
def test_a_flood_of_messages_is_refused_before_the_engine(
    server: ServerProcess, tenant_key, count: int
):
    tenant, key = tenant_key
    messages = [{"role": "user", "content": "a"}] * count
    resp = _post(server, key, "/v1/chat/completions", {"model": "smollm2-135m",
                                                        "messages": messages})  # fmt: skip
    assert resp.status_code in (400, 413), resp.text  # 100,000 may pass the body-size limit
    if resp.status_code == 400:
        assert resp.json()["error"]["param"] == "messages"
    responses = _post(server, key, "/v1/responses", {"model": "smollm2-135m",
                                                      "input": messages})  # fmt: skip
    assert responses.status_code in (400, 413), responses.text
    assert server.tenant_usage(tenant, 1, timeout=0.5) == []
