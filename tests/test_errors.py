"""Bad input never yields a 500 or a traceback: each gets a clear OpenAI-style error."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"
CHAT = "/v1/chat/completions"
GOOD = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def _assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["x-request-id"].startswith("req_")
    assert "Traceback" not in resp.text
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and isinstance(err["code"], str)
    assert "param" in err
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "invalid_request", None),
        (b"", "invalid_request", None),
        ({**GOOD, "messages": "hello"}, "invalid_value", "messages"),
        ({**GOOD, "max_tokens": "ten"}, "invalid_value", "max_tokens"),
        ({**GOOD, "temperature": 5}, "invalid_value", "temperature"),
        ({**GOOD, "messages": []}, "invalid_value", "messages"),
        ({"messages": GOOD["messages"]}, "missing_parameter", "model"),
        ({**GOOD, "foo": 1}, "unsupported_parameter", "foo"),
        ({**GOOD, "n": 2}, "invalid_value", "n"),
        ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, "invalid_value", None),
    ],
)
def test_malformed_requests_get_400(http, tenant_key, body: Any, code: str, param: str | None):
    _, key = tenant_key
    if isinstance(body, bytes):
        resp = http.post(CHAT, content=body, headers=_auth(key))
    else:
        resp = http.post(CHAT, json=body, headers=_auth(key))
    err = _assert_openai_error(resp, 400, code)
    if param is not None:
        assert err["param"] == param


def test_unknown_model_is_404(http, tenant_key):
    _, key = tenant_key
    resp = http.post(CHAT, json={**GOOD, "model": "no-such-model"}, headers=_auth(key))
    _assert_openai_error(resp, 404, "model_not_found")


def test_missing_and_wrong_keys_are_401(http, tenant_key):
    _assert_openai_error(http.post(CHAT, json=GOOD), 401, "missing_api_key")
    wrong = "tm-" + "x" * 32
    resp = http.post(CHAT, json=GOOD, headers=_auth(wrong))
    _assert_openai_error(resp, 401, "invalid_api_key")
    assert wrong not in resp.text


def test_revoked_key_is_refused_on_the_next_request(http, server: ServerProcess, tenant_key):
    tenant, _ = tenant_key
    issued = server.admin("POST", "/admin/keys", json={"tenant": tenant, "name": "short-lived"})
    assert http.post(CHAT, json=GOOD, headers=_auth(issued["key"])).status_code == 200
    server.admin("DELETE", f"/admin/keys/{issued['id']}")
    resp = http.post(CHAT, json=GOOD, headers=_auth(issued["key"]))
    _assert_openai_error(resp, 401)
    assert issued["key"] not in resp.text


def test_roles_are_kept_apart(http, tenant_key):
    _, key = tenant_key
    _assert_openai_error(http.post(CHAT, json=GOOD, headers=_auth(ADMIN_KEY)), 403, "forbidden")
    _assert_openai_error(http.get("/admin/tenants", headers=_auth(key)), 403, "forbidden")
    _assert_openai_error(http.get("/admin/tenants"), 401)


def test_oversized_bodies_are_413(http, tenant_key):
    _, key = tenant_key
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    _assert_openai_error(http.post(CHAT, json=big, headers=_auth(key)), 413, "request_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "'
        for _ in range(5):
            yield b"y" * (1024 * 1024)
        yield b'"}]}'

    resp = http.post(
        CHAT, content=chunked(), headers={**_auth(key), "Content-Type": "application/json"}
    )
    _assert_openai_error(resp, 413, "request_too_large")


def test_unknown_routes_and_methods_keep_the_error_shape(http, tenant_key):
    _, key = tenant_key
    _assert_openai_error(http.get("/v1/nope", headers=_auth(key)), 404)
    _assert_openai_error(http.get(CHAT, headers=_auth(key)), 405)


def test_bad_admin_input_is_400_not_500(http):
    auth = _auth(ADMIN_KEY)
    _assert_openai_error(http.post("/admin/tenants", json={"name": "Bad Name!"}, headers=auth), 400)
    _assert_openai_error(http.post("/admin/tenants", content=b"{", headers=auth), 400)
    _assert_openai_error(http.post("/admin/keys", json={"tenant": "nobody"}, headers=auth), 404)
    _assert_openai_error(http.delete("/admin/keys/key_nope", headers=auth), 404)
    _assert_openai_error(http.get("/admin/usage?group_by=color", headers=auth), 400)
    _assert_openai_error(http.get("/admin/usage?since=yesterday", headers=auth), 400)
