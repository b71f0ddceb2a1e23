"""A key's tool policy, in the policy itself: tools off the allow-list refuse the request
("refuse") or are removed from it, audited ("drop"); a request that cannot be served without
a removed tool is refused either way."""

import asyncio
from typing import Any

import pytest

from tokenmill.core.errors import Forbidden
from tokenmill.security.budgets import TokenBudgets
from tokenmill.security.keys import Principal, ToolPolicy
from tokenmill.security.limits import KeyLimiter
from tokenmill.security.policy import RequestPolicy
from tokenmill.security.roles import Role


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, p: Principal, what: str, detail: dict[str, Any]) -> None:
        self.records.append((what, detail))


async def _no_spending(holder: str, since: float | None) -> int:
    return 0


def _check(
    body: dict[str, Any], policy: ToolPolicy, tools: frozenset[str] | None = frozenset({"read"})
) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    audit = Audit()
    rules = RequestPolicy(KeyLimiter(), TokenBudgets(_no_spending), audit)
    p = Principal("key_1", "acme", Role.AGENT, tools=tools, tool_policy=policy)
    dropped = asyncio.run(rules.check(p, body, "req_1"))
    return dropped, audit.records


def _body(*names: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [], "tools": [_tool(n) for n in names], **extra}


def test_refuse_is_a_403_naming_the_tools_and_leaves_the_body_alone():
    body = _body("read", "tool_call", "apply_patch")
    with pytest.raises(Forbidden) as err:
        _check(body, ToolPolicy.REFUSE)
    assert err.value.code == "tool_not_allowed"
    assert "apply_patch" in err.value.message and "tool_call" in err.value.message
    assert [t["function"]["name"] for t in body["tools"]] == ["read", "tool_call", "apply_patch"]


def test_drop_removes_the_tools_in_place_and_audits_them():
    body = _body("read", "tool_call", "apply_patch", tool_choice="auto", parallel_tool_calls=True)
    dropped, audit = _check(body, ToolPolicy.DROP)
    assert dropped == ["apply_patch", "tool_call"]
    assert [t["function"]["name"] for t in body["tools"]] == ["read"]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", True)
    assert audit == [
        ("tool_dropped", {"tools": ["apply_patch", "tool_call"], "request_id": "req_1"})
    ]


def test_drop_with_nothing_to_drop_changes_nothing():
    body = _body("read", tool_choice="auto")
    assert _check(body, ToolPolicy.DROP) == ([], [])
    assert body == _body("read", tool_choice="auto")


def test_when_no_tool_is_left_the_request_goes_on_without_tools():
    body = _body("write", tool_choice="auto", parallel_tool_calls=False)
    dropped, _ = _check(body, ToolPolicy.DROP)
    assert dropped == ["write"]
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


def test_an_empty_allow_list_drops_every_tool():
    body = _body("read", "write")
    dropped, _ = _check(body, ToolPolicy.DROP, tools=frozenset())
    assert dropped == ["read", "write"] and "tools" not in body


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "function", "function": {"name": "write"}},  # chat
        {"type": "function", "name": "write"},  # the Responses API's shape
    ],
)
def test_a_tool_choice_naming_a_dropped_tool_is_refused(choice: dict[str, Any]):
    body = _body("read", "write", tool_choice=choice)
    with pytest.raises(Forbidden) as err:
        _check(body, ToolPolicy.DROP)
    assert err.value.code == "tool_not_allowed" and "write" in err.value.message


def test_a_tool_choice_naming_an_allowed_tool_keeps_it():
    choice = {"type": "function", "function": {"name": "read"}}
    body = _body("read", "write", tool_choice=choice)
    dropped, _ = _check(body, ToolPolicy.DROP)
    assert dropped == ["write"] and body["tool_choice"] == choice


def test_required_with_no_tool_left_is_refused():
    body = _body("write", tool_choice="required")
    with pytest.raises(Forbidden) as err:
        _check(body, ToolPolicy.DROP)
    assert err.value.code == "tool_not_allowed" and "required" in err.value.message


def test_required_with_an_allowed_tool_left_goes_on():
    body = _body("read", "write", tool_choice="required")
    assert _check(body, ToolPolicy.DROP)[0] == ["write"]
    assert body["tool_choice"] == "required"


def test_no_allow_list_means_any_tool_under_either_policy():
    for policy in ToolPolicy:
        body = _body("anything")
        assert _check(body, policy, tools=None) == ([], [])
