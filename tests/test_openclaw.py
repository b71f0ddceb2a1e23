"""OpenClaw, the agent framework, as an operator sets it up from docs/security.md: installed
from the npm registry with the Node it needs (scripts/install-openclaw.sh), its agent
registered under the standard profile with a tool allow-list, its provider configured as the
recipe says. One non-interactive agent turn completes through TokenMill, and the ledger
holds its tokens, every one attributed to the agent.

The commands and the config are read from the recipe itself, so the test fails when the
recipe does. Only the output limit is lowered (a 135M model on CPU writes ~10 tokens/s)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmill.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "scripts" / "install-openclaw.sh"
DOC_URL = "http://127.0.0.1:8400/v1"


def _recipe() -> tuple[list[list[str]], str]:
    """The OpenClaw section's shell commands (continuations joined, pipes cut off) and its
    JSON5 config."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text[text.index("## OpenClaw\n") : text.index("## Audit log\n")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    commands: list[list[str]] = []
    for lang, body in blocks:
        if lang != "bash":
            continue
        joined = re.sub(r"\\\n\s*", " ", "\n".join(x.strip() for x in body.splitlines()))
        for line in joined.splitlines():
            words = shlex.split(line.split(" | ")[0], comments=True)
            if words and words[0] in ("tokenmill", "openclaw"):
                commands.append(words)
    [config] = [body for lang, body in blocks if lang == "json5"]
    return commands, config


def _command(commands: list[list[str]], *head: str) -> list[str]:
    [found] = [c for c in commands if c[: len(head)] == list(head)]
    return found


def _registry_reachable() -> bool:
    try:
        out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
        registry = out.stdout.strip() or "https://registry.npmjs.org/"
        return httpx.get(registry.rstrip("/") + "/-/ping", timeout=15).status_code < 500
    except (OSError, subprocess.SubprocessError, httpx.HTTPError):
        return False


@pytest.fixture(scope="module")
def openclaw() -> Path:
    """The `openclaw` launcher, installed once into the cache (reused while it is whole)."""
    proc = subprocess.run(
        ["bash", str(INSTALLER)], capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        if not os.environ.get("CI") and not _registry_reachable():
            pytest.skip("the npm registry is unreachable: cannot install Node 24 and OpenClaw")
        pytest.fail(f"scripts/install-openclaw.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Any:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(1500)
def test_one_openclaw_agent_turn_through_tokenmill(
    server: ServerProcess, openclaw: Path, tmp_path: Path
):
    commands, config = _recipe()
    tenant = "openclaw-e2e"
    server.admin("POST", "/admin/tenants", json={"name": tenant})

    # 1. The agent, registered as the recipe says (in a tenant of this test's own).
    register = _command(commands, "tokenmill", "agents", "register")
    register[register.index("--tenant") + 1] = tenant
    done = _run([sys.executable, "-m", *register], server.env, tmp_path, 60)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    agent_id, key = made["agent"]["id"], made["key"]["key"]

    # 2. OpenClaw's config, as written, in a home of its own.
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".openclaw").mkdir(parents=True)
    work.mkdir()
    assert DOC_URL in config and "maxTokens: 1024" in config
    config = config.replace(DOC_URL, server.url + "/v1").replace("maxTokens: 1024", "maxTokens: 48")
    (home / ".openclaw" / "openclaw.json").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "XDG_"))}
    env |= {"HOME": str(home), "TOKENMILL_AGENT_KEY": key, "NO_COLOR": "1"}
    # The recipe's setting for a model that cannot drive tools (SmolLM2-135M).
    setting = _command(commands, "openclaw", "config", "set")
    done = _run([str(openclaw), *setting[1:]], env, work, 120)
    assert done.returncode == 0, done.stdout + done.stderr

    # 3. One non-interactive turn.
    turn = _command(commands, "openclaw", "agent", "exec")
    done = _run([str(openclaw), *turn[1:], "--timeout", "540"], env, work, 600)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout)
    assert (result["ok"], result["status"]) == (True, "ok"), result
    assert (result["provider"], result["model"]) == ("tokenmill", "smollm2-135m")
    assert result["final"].strip()

    # Metered, and to the agent: every request of the tenant names it; the tokens are those
    # OpenClaw was told it used.
    told = result["usage"]
    rows = server.tenant_usage(tenant, result["assistantTurns"], group_by="tenant,agent,owner")
    assert [(r["agent"], r["owner"]) for r in rows] == [(agent_id, "alice")]
    [row] = rows
    assert row["requests"] == result["assistantTurns"] >= 1
    assert row["prompt_tokens"] == told["input"] + told.get("cacheRead", 0) > 3000
    assert row["completion_tokens"] == told["output"] > 0

    # The recipe's two tool lists match: OpenClaw offered no tool off the agent's list.
    policy = [
        r
        for r in server.audit_records()
        if r["action"].startswith("policy.") and r["actor"].startswith(f"agent:{agent_id} ")
    ]
    assert policy == [], "OpenClaw offered tools off the recipe's --tools: update the recipe"
