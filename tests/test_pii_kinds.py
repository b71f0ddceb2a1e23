"""Which kinds of personal data the PII guard looks for: the server's default
(TOKENMILL_PII_KINDS), a tenant's own list (admin API, CLI, stored, told to the live guard), and
the guard using it, Presidio's kinds in a worker thread."""

import threading
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from tokenmill.api.admin_bodies import TenantIn, TenantPatch
from tokenmill.cli import admin_commands
from tokenmill.config import Settings
from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway import content_guard
from tokenmill.gateway.content_guard import ContentGuard, PiiKinds
from tokenmill.security.accounts import Accounts, TenantPii
from tokenmill.security.keys import KeyRing
from tokenmill.security.pii import Finding, PiiMode
from tokenmill.security.pii import presidio as presidio_module

TEXT = "Li Wei: li.wei@example.com, 13800138000, release 10.2.3.4"


def test_the_servers_default_kinds_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().pii_kinds is None  # every pattern kind
    monkeypatch.setenv("TOKENMILL_PII_KINDS", "cn_id, cn_mobile,email")
    assert Settings().pii_kinds == {"cn_id", "cn_mobile", "email"}
    monkeypatch.setenv("TOKENMILL_PII_KINDS", "cn_id,ssn")
    with pytest.raises(ValidationError, match=r"unknown PII kinds \['ssn'\]; known: .*us_ssn"):
        Settings()


def test_presidio_kinds_without_presidio_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    monkeypatch.setattr(presidio_module, "available", lambda: False)
    with pytest.raises(ValidationError, match=r"need the `pii` extra"):
        Settings(pii_kinds="cn_id,person")
    with pytest.raises(InvalidRequest, match=r"tokenmill\[pii\]"):
        Accounts(engine, KeyRing()).create_tenant("acme", pii_kinds=["person"])


def test_a_tenants_kinds_are_checked_stored_and_told_to_listeners(engine: Engine) -> None:
    accounts = Accounts(engine, KeyRing())
    heard: list[tuple[str, TenantPii]] = []
    accounts.on_tenant_change(lambda tenant, _, pii: heard.append((tenant, pii)))

    made = accounts.create_tenant("acme", pii_mode=PiiMode.MASK, pii_kinds=["email", "cn_id"])
    assert made["pii_kinds"] == ["cn_id", "email"]
    with pytest.raises(InvalidRequest, match=r"unknown PII kinds \['phone'\]") as refused:
        accounts.update_tenant("acme", pii_kinds=["email", "phone"])
    assert refused.value.param == "pii_kinds"
    accounts.update_tenant("acme", weight=2)  # the kinds stay
    assert Accounts(engine, KeyRing()).pii_kinds() == {"acme": {"cn_id", "email"}}
    accounts.update_tenant("acme", pii_kinds=None)  # back to the server's
    assert accounts.pii_kinds() == {}
    assert heard == [
        ("acme", TenantPii(PiiMode.MASK, frozenset({"cn_id", "email"}))),
        ("acme", TenantPii(PiiMode.MASK, frozenset({"cn_id", "email"}))),
        ("acme", TenantPii(PiiMode.MASK, None)),
    ]


def test_the_admin_bodies_take_kinds() -> None:
    assert TenantIn(name="acme", pii_kinds=["email"]).pii_kinds == ["email"]
    patch = TenantPatch.model_validate({"pii_kinds": None})
    assert "pii_kinds" in patch.model_fields_set and patch.pii_kinds is None
    with pytest.raises(ValidationError, match="weight, pii_mode and/or pii_kinds"):
        TenantPatch.model_validate({})


def test_the_cli_sets_a_tenants_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str, Any]] = []

    class Recorder:
        def __init__(self, url: str | None) -> None:
            pass

        def call(self, method: str, path: str, json: Any = None) -> Any:
            sent.append((method, path, json))
            return {"name": "acme", "pii_kinds": (json or {}).get("pii_kinds")}

    monkeypatch.setattr(admin_commands, "AdminClient", Recorder)
    admin_commands.tenants_set_pii_kinds("acme", "cn_id, email", url=None, json_out=True)
    admin_commands.tenants_set_pii_kinds("acme", "default", url=None, json_out=True)
    assert sent == [
        ("PATCH", "/admin/tenants/acme", {"pii_kinds": ["cn_id", "email"]}),
        ("PATCH", "/admin/tenants/acme", {"pii_kinds": None}),
    ]


def test_the_guard_looks_for_a_tenants_kinds_only() -> None:
    kinds = PiiKinds(default=None, tenants={"quiet": frozenset({"email"})})
    guard = ContentGuard(PiiMode.MASK, {}, lambda *_: None, kinds)
    whole = {"choices": [{"message": {"content": TEXT}}]}
    guard.answer("anyone", PiiMode.MASK, whole)
    assert whole["choices"][0]["message"]["content"] == (
        "Li Wei: [EMAIL], [CN_MOBILE], release [IP]"
    )
    quiet = {"choices": [{"message": {"content": TEXT}}]}
    guard.answer("quiet", PiiMode.MASK, quiet)
    assert quiet["choices"][0]["message"]["content"] == (
        "Li Wei: [EMAIL], 13800138000, release 10.2.3.4"
    )
    stream = guard.stream("quiet", PiiMode.MASK)
    assert stream is not None
    chunk = {"choices": [{"index": 0, "delta": {"content": TEXT}, "finish_reason": "stop"}]}
    stream.chunk(chunk)
    assert chunk["choices"][0]["delta"]["content"] == quiet["choices"][0]["message"]["content"]
    guard.kinds.set("quiet", None)  # back to the server's: everything
    assert guard.kinds.of("quiet") is None


async def test_presidio_kinds_run_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def names(text: str, kinds: frozenset[str], model: str) -> list[Finding]:
        threads.append(threading.current_thread())
        start = text.index("Li Wei")
        return [Finding("person", start, start + len("Li Wei"))] if "person" in kinds else []

    monkeypatch.setattr(content_guard, "presidio_findings", names)
    kinds = PiiKinds(tenants={"bank": frozenset({"person", "email"})})
    guard = ContentGuard(PiiMode.MASK, {}, lambda *_: None, kinds)
    body = {"messages": [{"role": "user", "content": TEXT}]}
    assert await guard.check_prompt("bank", "chat", body, size=len(TEXT)) is PiiMode.MASK
    assert body["messages"][0]["content"] == "[PERSON]: [EMAIL], 13800138000, release 10.2.3.4"
    answer = {"choices": [{"message": {"content": TEXT}}]}
    await guard.check_answer("bank", PiiMode.MASK, answer)
    assert answer["choices"][0]["message"]["content"].startswith("[PERSON]: [EMAIL]")
    assert len(threads) == 2 and threading.main_thread() not in threads
