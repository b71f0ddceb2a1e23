"""Bad input at the HTTP boundary, against the real server: every case gets the right status and
an OpenAI-shaped error body, never a 500 or a traceback, always an `x-request-id`, and never
the caller's key echoed back."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
GOOD = {"model": MODEL, "messages": HI, "max_tokens": 1}
LIMIT = 4 * 1024 * 1024  # Settings.max_body_bytes


def _call(**function: Any) -> dict[str, Any]:
    """An assistant message's tool call, as the OpenAI SDK sends it back."""
    return {"id": "call_1", "type": "function", "function": function}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, *secrets: str) -> dict[str, Any]:
    """The OpenAI error object of `resp`, after checking everything every error must satisfy."""
    assert resp.status_code == status, resp.text
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.headers["content-type"].startswith("application/json")
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    for secret in (*secrets, ADMIN_KEY):
        assert secret not in resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert isinstance(err["code"], str) and err["code"]
    assert err["param"] is None or isinstance(err["param"], str)
    return dict(err)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        pytest.param(b'{"model": "smollm2-135m",', "invalid_json", None, id="malformed-json"),
        pytest.param(b"", "invalid_request", None, id="empty-body"),
        pytest.param([GOOD], "invalid_request", None, id="list-not-object"),
        pytest.param("hello", "invalid_request", None, id="string-not-object"),
        pytest.param({**GOOD, "messages": "hi"}, "invalid_value", "messages", id="messages-str"),
        pytest.param({**GOOD, "max_tokens": "ten"}, "invalid_value", "max_tokens", id="max-ten"),
        pytest.param({**GOOD, "temperature": 5}, "invalid_value", "temperature", id="temp-5"),
        pytest.param({**GOOD, "messages": []}, "invalid_value", "messages", id="no-messages"),
        pytest.param({"messages": HI}, "missing_parameter", "model", id="missing-model"),
        pytest.param({**GOOD, "n": 129}, "invalid_value", "n", id="n-129"),
        pytest.param({**GOOD, "n": "1"}, "invalid_value", "n", id="n-str"),
        pytest.param({**GOOD, "store": "no"}, "invalid_value", "store", id="new-field-type"),
        pytest.param({**GOOD, "stop": 5}, "invalid_value", "stop", id="union-names-the-field"),
        pytest.param({**GOOD, "stop": [1]}, "invalid_value", "stop", id="union-item"),
        pytest.param(
            {**GOOD, "messages": [{"role": "wizard", "content": "x"}]},
            "invalid_value",
            "messages.0.role",
            id="bad-role",
        ),
        pytest.param(
            {**GOOD, "messages": [*HI, {"role": "wizard"}, {"role": "elf"}]},
            "invalid_value",
            "messages.1.role",
            id="first-of-two-bad-roles",
        ),
        # Values a lax validator would coerce while the engine got the original: refused here.
        pytest.param({**GOOD, "stream": "false"}, "invalid_value", "stream", id="stream-str"),
        pytest.param({**GOOD, "max_tokens": "1"}, "invalid_value", "max_tokens", id="max-str"),
        pytest.param({**GOOD, "temperature": "0.5"}, "invalid_value", "temperature", id="t-str"),
        pytest.param({**GOOD, "max_tokens": 2**31}, "invalid_value", "max_tokens", id="max-big"),
        pytest.param({**GOOD, "max_tokens": 0}, "invalid_value", "max_tokens", id="max-0"),
        # Shapes the engine answers with a 500 of its own: refused here, by name, as a 400.
        pytest.param(
            {**GOOD, "tools": [{"type": "function"}]},
            "missing_parameter",
            "tools.0.function",
            id="tool-without-function",
        ),
        pytest.param(
            {**GOOD, "tools": [{"type": "function", "function": {"name": 5}}]},
            "invalid_value",
            "tools.0.function.name",
            id="tool-name-int",
        ),
        pytest.param(
            {**GOOD, "tools": [{"type": "custom", "custom": {"name": "c"}}]},
            "invalid_value",
            "tools.0.type",
            id="custom-tool",
        ),
        pytest.param(
            {**GOOD, "messages": [*HI, {"role": "assistant", "tool_calls": [_call(name="f")]}]},
            "missing_parameter",
            "messages.1.tool_calls.0.function.arguments",
            id="tool-call-without-arguments",
        ),
        pytest.param(
            {**GOOD, "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "invalid_value",
            "messages.0.content",
            id="text-part-without-text",
        ),
    ],
)
def test_invalid_bodies_are_400(http, tenant_key, body: Any, code: str, param: str | None):
    _, key = tenant_key
    headers = {**_bearer(key), "Content-Type": "application/json"}
    if isinstance(body, bytes):
        resp = http.post(CHAT, content=body, headers=headers)
    else:
        resp = http.post(CHAT, json=body, headers=headers)
    err = _error(resp, 400, key)
    assert err["type"] == "invalid_request_error"
    assert (err["code"], err["param"]) == (code, param)


def test_unknown_model_is_404(http, tenant_key):
    _, key = tenant_key
    resp = http.post(CHAT, json={**GOOD, "model": "no-such-model"}, headers=_bearer(key))
    err = _error(resp, 404, key)
    assert (err["code"], err["param"]) == ("model_not_found", "model")
    assert "no-such-model" in err["message"]


def test_missing_and_wrong_keys_are_401(http):
    err = _error(http.post(CHAT, json=GOOD), 401)
    assert (err["type"], err["code"]) == ("authentication_error", "missing_api_key")

    wrong = "tm-wrong-" + "q" * 40
    err = _error(http.post(CHAT, json=GOOD, headers=_bearer(wrong)), 401, wrong)
    assert (err["type"], err["code"]) == ("authentication_error", "invalid_api_key")


def test_revoked_key_is_refused_immediately(http, server: ServerProcess, tenant_key):
    tenant, _ = tenant_key
    issued = server.admin("POST", "/admin/keys", json={"tenant": tenant, "name": "brief"})
    ok = http.post(CHAT, json=GOOD, headers=_bearer(issued["key"]))
    assert ok.status_code == 200, ok.text
    server.admin("DELETE", f"/admin/keys/{issued['id']}")
    err = _error(http.post(CHAT, json=GOOD, headers=_bearer(issued["key"])), 401, issued["key"])
    assert err["code"] == "invalid_api_key"


def test_roles_are_kept_apart(http, tenant_key):
    _, key = tenant_key
    as_admin = _error(http.post(CHAT, json=GOOD, headers=_bearer(ADMIN_KEY)), 403)
    assert as_admin["type"] == "permission_error"
    assert as_admin["message"] == "this key's scopes (management) do not allow inference"
    as_tenant = _error(http.get("/admin/tenants", headers=_bearer(key)), 403, key)
    assert as_tenant["type"] == "permission_error"
    assert as_tenant["message"] == "this key's scopes (inference) do not allow management"
    assert _error(http.get("/admin/tenants"), 401)["code"] == "missing_api_key"


def _oversized() -> Iterator[bytes]:
    """A JSON body past the limit, sent in pieces with no Content-Length (chunked)."""
    yield b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "'
    for _ in range(5):
        yield b"y" * (1024 * 1024)
    yield b'"}]}'


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oversized_body_is_413(http, tenant_key, framing: str):
    _, key = tenant_key
    headers = {**_bearer(key), "Content-Type": "application/json"}
    if framing == "content-length":
        big = {**GOOD, "messages": [{"role": "user", "content": "x" * (LIMIT + 1)}]}
        resp = http.post(CHAT, json=big, headers=headers)
        assert int(resp.request.headers["content-length"]) > LIMIT
    else:
        resp = http.post(CHAT, content=_oversized(), headers=headers)
        assert "content-length" not in resp.request.headers
        assert resp.request.headers["transfer-encoding"] == "chunked"
    assert _error(resp, 413, key)["code"] == "request_too_large"


def test_unknown_route_and_wrong_method_keep_the_shape(http, tenant_key):
    _, key = tenant_key
    unknown = _error(http.post("/v1/nope", json={}, headers=_bearer(key)), 404, key)
    assert (unknown["code"], unknown["message"]) == ("not_found", "Unknown route: POST /v1/nope")
    wrong_method = http.get(CHAT, headers=_bearer(key))
    _error(wrong_method, 405, key)
    assert wrong_method.headers.get("allow") == "POST"  # RFC 9110: a 405 names what is allowed


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"temperature": 0, "top_p": 1}, id="whole-number-floats"),
        pytest.param(
            {
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": None,
                     "tool_calls": [_call(name="f", arguments="{}")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                ],
            },
            id="tool-round-trip",
        ),
        pytest.param({"foo": 1, "chat_template_kwargs": {}}, id="unknown-fields-are-dropped"),
    ],
)  # fmt: skip
def test_strict_types_still_accept_what_clients_send(http, tenant_key, extra: dict[str, Any]):
    _, key = tenant_key
    resp = http.post(CHAT, json={**GOOD, **extra}, headers=_bearer(key))
    assert resp.status_code == 200, resp.text


def test_bad_admin_input_is_400_or_404_not_500(http):
    auth = _bearer(ADMIN_KEY)
    as_json = {**auth, "Content-Type": "application/json"}
    malformed = _error(http.post("/admin/tenants", content=b"[", headers=as_json), 400)
    assert (malformed["code"], malformed["param"]) == ("invalid_json", None)  # as on /v1
    for not_an_object in (
        http.post("/admin/tenants", content=b'{"name": "x"}', headers=auth),  # no Content-Type
        http.post("/admin/tenants", content=b"", headers=as_json),
        http.post("/admin/tenants", json=["x"], headers=auth),
    ):
        err = _error(not_an_object, 400)
        assert "must be a JSON object" in err["message"] and err["param"] is None
    _error(http.post("/admin/tenants", json={"name": "Bad Name!"}, headers=auth), 400)
    _error(http.post("/admin/keys", json={"tenant": "nobody"}, headers=auth), 404)
    _error(http.delete("/admin/keys/key_nope", headers=auth), 404)
    _error(http.get("/admin/usage?group_by=color", headers=auth), 400)
    _error(http.get("/admin/usage?since=yesterday", headers=auth), 400)
