"""Agents as principals, through the official OpenAI SDK against the real engine: tool
allow-list at the gateway, budget, attribution of usage and audit to agent and owner."""

import json
import sqlite3
import subprocess
import sys

import httpx
import openai
import pytest

from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"
HELLO = [{"role": "user", "content": "Say hello."}]


def _tool(name: str) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }


def _register(server: ServerProcess, tenant: str, *args: str, profile: str = "restricted") -> dict:
    """`tokenmill agents register`, as a person would run it."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenmill",
            "agents",
            "register",
            "helper",
            "--tenant",
            tenant,
            "--owner",
            "alice",
            "--profile",
            profile,
            "--json",
            *args,
        ],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def agent(server: ServerProcess, request: pytest.FixtureRequest) -> dict:
    tenant = f"agents-{request.node.name[5:30].replace('_', '-')}"
    server.admin("POST", "/admin/tenants", json={"name": tenant})
    made = _register(
        server, tenant, "--tools", "get_weather", "--budget-tokens", "400", "--rpm", "100"
    )
    made["tenant"] = tenant
    return made


def _client(server: ServerProcess, agent: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=agent["key"]["key"], max_retries=0)


def test_registration_gives_the_profile_limits_and_the_given_tools(server, agent):
    assert agent["agent"]["owner"] == "alice" and agent["agent"]["profile"] == "restricted"
    keys = server.admin("GET", "/admin/keys", params={"tenant": agent["tenant"]})["data"]
    (key,) = keys
    assert (key["role"], key["agent"], key["owner"]) == ("agent", agent["agent"]["id"], "alice")
    assert key["tools"] == ["get_weather"] and key["budget_tokens"] == 400
    assert (key["concurrency"], key["budget_period"]) == (2, "day")  # from the profile
    assert key["tool_policy"] == "refuse"  # restricted: a misconfigured agent fails loudly


def test_a_tool_outside_the_allow_list_is_refused_and_audited(server, agent):
    client = _client(server, agent)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=4,
            tools=[_tool("get_weather"), _tool("delete_files")],
        )
    assert err.value.code == "tool_not_allowed"
    assert "delete_files" in err.value.message
    denial = _audit(server, "policy.tool_not_allowed", agent)
    assert denial["detail"]["tools"] == ["delete_files"]
    assert denial["on_behalf_of"] == f"user:alice@{agent['tenant']}"


def test_an_allowed_tool_passes(server, agent):
    resp = _client(server, agent).chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=8, tools=[_tool("get_weather")]
    )
    assert resp.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_over_budget_the_agent_gets_429_and_usage_names_agent_and_owner(server, agent):
    client = _client(server, agent)
    spent = served = 0
    with pytest.raises(openai.RateLimitError) as err:
        for _ in range(20):  # 400 tokens: a few requests of up to ~60 tokens each
            resp = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=20)
            assert resp.usage is not None
            spent += resp.usage.total_tokens
            served += 1
    assert err.value.code == "budget_exceeded"
    assert 0 < spent <= 400  # reservation: never past the budget
    rows = server.tenant_usage(agent["tenant"], served, group_by="tenant,agent,owner")
    assert [(r["agent"], r["owner"]) for r in rows] == [(agent["agent"]["id"], "alice")]
    assert rows[0]["total_tokens"] == spent
    denial = _audit(server, "policy.budget_exceeded", agent)
    assert denial["actor"].startswith(f"agent:{agent['agent']['id']} ")


def test_the_callers_trace_is_continued(server, agent):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    raw = _client(server, agent).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=4,
        extra_headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    request_id = raw.headers["x-request-id"]
    server.tenant_usage(agent["tenant"], 1)
    with sqlite3.connect(server.data_dir / "tokenmill.db") as db:
        row = db.execute(
            "SELECT trace_id, agent, owner FROM usage_records WHERE request_id = ?", (request_id,)
        ).fetchone()
    assert row == (trace, agent["agent"]["id"], "alice")


def test_retiring_an_agent_stops_its_key_at_once(server, agent):
    client = _client(server, agent)
    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    server.admin("DELETE", f"/admin/agents/{agent['agent']['id']}")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)


def _audit(server: ServerProcess, action: str, agent: dict) -> dict:
    records = server.audit_records()
    mine = [
        r
        for r in records
        if r["action"] == action and r["actor"].startswith(f"agent:{agent['agent']['id']}")
    ]
    assert mine, f"no {action} record for the agent"
    return mine[-1]


def test_a_refused_registration_leaves_no_agent_behind(server, agent):
    body = {
        "tenant": agent["tenant"],
        "name": "late",
        "owner": "bob",
        "expires_at": "2001-01-01T00:00:00Z",
    }
    refused = httpx.post(
        server.url + "/admin/agents",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert refused.status_code == 400
    body.pop("expires_at")
    assert server.admin("POST", "/admin/agents", json=body)["agent"]["name"] == "late"


@pytest.fixture
def standard_agent(server: ServerProcess, request: pytest.FixtureRequest) -> dict:
    """An agent under the standard profile: tools off its list are dropped, not refused."""
    tenant = f"std-{request.node.name[5:30].replace('_', '-')}"
    server.admin("POST", "/admin/tenants", json={"name": tenant})
    made = _register(server, tenant, "--tools", "get_weather", profile="standard")
    made["tenant"] = tenant
    return made


def test_a_standard_agent_gets_tools_off_its_list_dropped_and_audited(server, standard_agent):
    client = _client(server, standard_agent)
    both = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=4,
        tools=[_tool("get_weather"), _tool("delete_files")],
    )
    alone = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=4, tools=[_tool("get_weather")]
    )
    assert both.usage is not None and alone.usage is not None
    assert both.usage.prompt_tokens == alone.usage.prompt_tokens  # the engine never saw it
    dropped = _audit(server, "policy.tool_dropped", standard_agent)
    assert dropped["detail"]["tools"] == ["delete_files"]
    assert dropped["outcome"] == "denied"
    assert dropped["on_behalf_of"] == f"user:alice@{standard_agent['tenant']}"


def test_a_dropped_tool_that_the_request_demands_is_refused(server, standard_agent):
    client = _client(server, standard_agent)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=4,
            tools=[_tool("get_weather"), _tool("delete_files")],
            tool_choice={"type": "function", "function": {"name": "delete_files"}},
        )
    assert err.value.code == "tool_not_allowed" and "delete_files" in err.value.message


def test_the_tool_policy_can_be_set_at_registration_and_survives_rotation(server, agent):
    tenant = agent["tenant"]
    made = subprocess.run(
        [sys.executable, "-m", "tokenmill", "agents", "register", "other", "--tenant", tenant,
         "--owner", "bob", "--profile", "restricted", "--tool-policy", "drop", "--json"],
        env=server.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key_id = json.loads(made.stdout)["key"]["id"]
    server.admin("POST", f"/admin/keys/{key_id}/rotate", json={"grace_s": 0})
    keys = server.admin("GET", "/admin/keys", params={"tenant": tenant})["data"]
    mine = [k for k in keys if k["owner"] == "bob"]
    assert [k["tool_policy"] for k in mine] == ["drop", "drop"]  # the old key and its successor
    bad = _cli_fails(server, "agents", "register", "x", "--tenant", tenant, "--owner", "bob",
                     "--tool-policy", "ignore")  # fmt: skip
    assert "ignore" in bad and "drop" in bad


def _cli_fails(server: ServerProcess, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    return proc.stderr
