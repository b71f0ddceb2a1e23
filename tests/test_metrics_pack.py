"""The metrics pack: docs/metrics.md lists every metric; the Grafana dashboards and alert rules
in deploy/ use only those; promtool accepts the rules and they fire on the series they are
meant for; and after a real request mix every listed metric is in /metrics, with the type and
labels the list gives, and nothing unlisted is."""

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # imported here, conftest would put this whole module in the engine tier
    from tokenmill.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "tokenmill-alerts.yml"
MODEL = "smollm2-135m"

ALWAYS, ONCE_USED, WITH_ACCELERATORS, NOT_YET = (
    "always", "once used", "with accelerators", "not yet",
)  # fmt: skip
_ROW = re.compile(r"^\| `(tokenmill_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \| ([^|]+) \|")
_NAME = re.compile(r"\btokenmill_[a-zA-Z0-9_:]+")
_SELECTOR = re.compile(r"\b(tokenmill_[a-zA-Z0-9_:]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Documented:
    name: str  # as exposed: counters with `_total`, histograms by their base name
    type: str
    labels: frozenset[str]
    present: str

    @property
    def family(self) -> str:
        """The family name prometheus_client's parser gives it."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    @property
    def series(self) -> set[str]:
        if self.type == "histogram":
            return {self.name + s for s in ("_bucket", "_sum", "_count")}
        return {self.name}


def documented() -> dict[str, Documented]:
    out: dict[str, Documented] = {}
    for line in DOC.read_text().splitlines():
        m = _ROW.match(line)
        if m is None:
            continue
        name, kind, labels, present = (g.strip() for g in m.groups())
        assert name not in out, f"{name} is listed twice in docs/metrics.md"
        assert kind in ("counter", "gauge", "histogram"), f"{name}: type {kind!r}"
        assert present in (ALWAYS, ONCE_USED, WITH_ACCELERATORS, NOT_YET), f"{name}: {present!r}"
        assert (kind == "counter") == name.endswith("_total"), f"{name}: a counter ends in _total"
        names = frozenset() if labels == "(none)" else frozenset(labels.split(", "))
        out[name] = Documented(name, kind, names, present)
    return out


def _by_series(docs: dict[str, Documented]) -> dict[str, Documented]:
    return {s: d for d in docs.values() for s in d.series}


def _dashboard_exprs(node: Any) -> Iterator[str]:
    """Every PromQL string in a dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str) and "(" in value:
                yield value  # a query variable's PromQL, not a custom variable's list
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # those inside a collapsed row
    return out


# -- fast: the list, the dashboards and the rules agree ----------------------------------------


def test_the_list_covers_every_group():
    text = DOC.read_text()
    for group in ("Gateway", "Scheduler queues", "Replicas", "Engines", "Accelerators",
                  "Journal and ledger", "Billing", "Security"):  # fmt: skip
        assert f"\n## {group}\n" in text, group
    docs = documented()
    assert len(docs) >= 20
    assert {d.present for d in docs.values()} >= {ALWAYS, ONCE_USED, WITH_ACCELERATORS}


def test_the_list_names_every_metric_the_code_registers():
    """Every `tokenmill_*` name in observe/metrics.py is listed (device gauges are built from
    a table of suffixes there, so they are checked against it)."""
    from tokenmill.observe.metrics import _DEVICE_GAUGES

    source = (ROOT / "src" / "tokenmill" / "observe" / "metrics.py").read_text()
    registered = set(re.findall(r'"(tokenmill_[a-z0-9_]+)"', source))
    registered |= {f"tokenmill_device_{suffix}" for suffix in _DEVICE_GAUGES}
    families = {d.family for d in documented().values()}
    assert registered - families == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_is_a_grafana_dashboard(path: Path):
    dashboard = json.loads(path.read_text())
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    panels = _all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["expr"].strip() and t["refId"], panel["title"]
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "two panels share a title"


def test_dashboard_uids_are_unique():
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert DASHBOARDS and len(uids) == len(set(uids))


def test_the_overview_has_its_slo_tiles_and_the_panels_the_issue_asks_for():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "tokenmill-overview.json").read_text())
    panels = _all_panels(dashboard)
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for hist in ("tokenmill_time_to_first_token_seconds",
                 "tokenmill_time_per_output_token_seconds"):  # fmt: skip
        # A stat tile: the share of requests within the target, coloured by thresholds.
        [tile] = [p for p in panels if p["type"] == "stat"
                  and p["fieldConfig"]["defaults"]["unit"] == "percentunit"
                  and f"{hist}_bucket" in p["targets"][0]["expr"]]  # fmt: skip
        assert len(tile["fieldConfig"]["defaults"]["thresholds"]["steps"]) >= 2
    for name in ("tokenmill_completion_tokens_total", "tokenmill_requests_total",
                 "tokenmill_queue_depth", "tokenmill_replica_state", "tokenmill_device_utilisation",
                 "tokenmill_device_memory_used_bytes", "tokenmill_device_power_watts",
                 "tokenmill_ledger_lag_seconds", "tokenmill_requests_refused_total"):  # fmt: skip
        assert name in exprs, name


def test_every_query_uses_only_listed_metrics_and_their_labels():
    series = _by_series(documented())
    exprs = [e for path in DASHBOARDS for e in _dashboard_exprs(json.loads(path.read_text()))]
    exprs += _rule_exprs()
    assert len(exprs) > 20
    used = set()
    for expr in exprs:
        for name in _NAME.findall(expr):
            assert name in series, f"{name} (in {expr!r}) is not in docs/metrics.md"
            used.add(series[name].name)
        for name, matchers in _SELECTOR.findall(expr):
            allowed = series[name].labels | ({"le"} if name.endswith("_bucket") else set())
            for label in _MATCHER.findall(matchers):
                assert label in allowed, f"{name} has no label {label} (in {expr!r})"
    # Each alert the issue asks for stands on a metric of the list.
    for name in ("tokenmill_replica_state", "tokenmill_queue_depth",
                 "tokenmill_requests_refused_total", "tokenmill_budget_used_ratio",
                 "tokenmill_ledger_lag_seconds", "tokenmill_audit_verify_ok"):  # fmt: skip
        assert any(name in e for e in _rule_exprs()), name
    assert used


# -- promtool ---------------------------------------------------------------------------------

_PROMTOOL = shutil.which("promtool")
_NO_PROMTOOL = "promtool is not on PATH (Debian: apt-get install -y prometheus)"


@pytest.mark.skipif(_PROMTOOL is None, reason=_NO_PROMTOOL)
def test_promtool_accepts_the_rules():
    done = subprocess.run([str(_PROMTOOL), "check", "rules", str(RULES)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# Series as a scrape of a troubled TokenMill would give them (one sample a minute)...
_SERIES = [
    ('tokenmill_replica_state{deployment="a",replica="a-0",state="ready"}', "0x20"),
    ('tokenmill_replica_state{deployment="a",replica="a-0",state="failed"}', "1x20"),
    ('tokenmill_replica_state{deployment="b",replica="b-0",state="ready"}', "1x20"),
    ('tokenmill_replica_state{deployment="b",replica="b-0",state="failed"}', "0x20"),
    ('tokenmill_queue_depth{model="a"}', "200x20"),
    ('tokenmill_queue_depth{model="b"}', "3x20"),
    ('tokenmill_requests_total{model="b",tenant="t",status="200"}', "0+60x20"),
    ('tokenmill_requests_refused_total{model="b",tenant="t",status="429"}', "0+30x20"),
    ('tokenmill_requests_refused_total{model="a",tenant="t",status="503"}', "0+5x20"),
    ("tokenmill_usage_journal_held_records", "0 0 4x18"),
    ("tokenmill_ledger_lag_seconds", "0 0 120x18"),
    ('tokenmill_budget_used_ratio{budget="b1",holder="tenant:t",period="month"}', "0.5 0.85x19"),
    ("tokenmill_audit_verify_ok", "1 1 0x18"),
]
# ...and the alerts they must raise: (when, alert, the label sets firing then).
_FIRING: list[tuple[str, str, list[dict[str, str]]]] = [
    ("15m", "TokenMillReplicaDown", [{"severity": "warning", "deployment": "a", "replica": "a-0"}]),
    ("15m", "TokenMillDeploymentUnavailable", [{"severity": "critical", "deployment": "a"}]),
    ("15m", "TokenMillQueueSaturated", [{"severity": "warning", "model": "a"}]),
    ("18m", "TokenMillRefusalsRising", [{"severity": "warning", "model": m} for m in "ab"]),
    ("15m", "TokenMillServerErrors", []),
    ("15m", "TokenMillJournalHoldingRecords", [{"severity": "critical"}]),
    ("15m", "TokenMillLedgerLag", [{"severity": "warning"}]),
    ("1m", "TokenMillLedgerLag", []),
    ("15m", "TokenMillBudgetAt80Percent",
     [{"severity": "info", "budget": "b1", "holder": "tenant:t", "period": "month"}]),
    ("15m", "TokenMillBudgetExhausted", []),
    ("3m", "TokenMillBudgetAt80Percent", []),  # 85% since 1m: pending for 5 minutes
    ("15m", "TokenMillAuditVerifyFailed", [{"severity": "critical"}]),
    ("1m", "TokenMillAuditVerifyFailed", []),
]  # fmt: skip


@pytest.mark.skipif(_PROMTOOL is None, reason=_NO_PROMTOOL)
def test_the_alerts_fire_on_what_they_are_for(tmp_path: Path):
    # promtool compares annotations too when it is given none to expect: test a copy of the
    # rules without them (`check rules` above has checked their templates).
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    spec = tmp_path / "tokenmill-alerts.test.yml"
    test = {
        "interval": "1m",
        "input_series": [{"series": series, "values": values} for series, values in _SERIES],
        "alert_rule_test": [
            {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": x} for x in fired]}
            for at, alert, fired in _FIRING
        ],
    }
    spec.write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": [test]}))
    done = subprocess.run([str(_PROMTOOL), "test", "rules", str(spec)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# -- engine: a real request mix, then every listed metric is in /metrics ----------------------

PERSONAL = "Write to li.wei@example.com, or call 13800138000."
# /admin/fleet's figure for each accelerator gauge (fleet/watch.py device_samples)
_FLEET_FIGURE = {
    "tokenmill_device_utilisation": "utilisation",
    "tokenmill_device_memory_bytes": "memory_gb",
    "tokenmill_device_memory_used_bytes": "memory_used_gb",
    "tokenmill_device_power_watts": "power_w",
    "tokenmill_device_temperature_celsius": "temperature_c",
    "tokenmill_device_healthy": "healthy",
}


def _request_mix(server: "ServerProcess") -> None:
    tenant = "metrics-pack"
    server.admin("POST", "/admin/tenants", json={"name": tenant, "pii_mode": "log"})
    budget = {"holder": f"tenant:{tenant}", "limit": "100", "period": "month"}
    server.admin("POST", "/admin/budgets", json=budget)  # checked, and shown, from now on
    key = server.new_key(tenant)
    url = server.url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": PERSONAL}]}

    answer = httpx.post(url, json=body, headers=auth, timeout=60)  # PII logged, not blocked
    assert answer.status_code == 200, answer.text
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url, json=streamed, headers=auth, timeout=60) as r:
        assert r.status_code == 200
        assert any(line.startswith("data: [DONE]") for line in r.iter_lines())

    bad_key = httpx.post(url, json=body, timeout=30, headers={"Authorization": "Bearer tm-nope"})
    assert bad_key.status_code == 401
    over_budget = server.new_key(tenant, budget_tokens=1)  # no request fits in one token
    refused = httpx.post(url, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {over_budget}"})  # fmt: skip
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    embeddings = httpx.post(server.url + "/v1/embeddings", headers=auth, timeout=30,
                            json={"model": MODEL, "input": "hi"})  # fmt: skip
    # The default deployment was not started for embeddings (tests/test_embeddings.py starts
    # one that is): a gateway refusal, which no listed metric counts.
    assert embeddings.status_code == 400


def _scrape(server: "ServerProcess") -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(server.metrics())}


def _devices(server: "ServerProcess") -> list[dict[str, Any]]:
    fleet = server.admin("GET", "/admin/fleet")
    return [d for node in fleet["nodes"] for d in node["devices"]]


def test_a_real_request_mix_emits_every_listed_metric(server: "ServerProcess"):
    docs = documented()
    _request_mix(server)
    devices = _devices(server)
    families = _scrape(server)
    if devices:  # device figures come from discovery, refreshed apart from requests
        deadline = time.monotonic() + 30
        while not families["tokenmill_device_memory_bytes"].samples:
            assert time.monotonic() < deadline, f"{len(devices)} devices but no device metrics"
            time.sleep(0.5)
            families = _scrape(server)

    for d in docs.values():
        family = families.get(d.family)
        if d.present == NOT_YET:
            assert family is None, f"{d.name} is emitted now: move it to its group in the doc"
            continue
        assert family is not None, f"{d.name} is not in /metrics"
        assert family.type == d.type, f"{d.name} is a {family.type}, the doc says {d.type}"
        samples = [s for s in family.samples if s.name in d.series]
        for s in samples:
            assert set(s.labels) - {"le"} == d.labels, f"{d.name}: labels {sorted(s.labels)}"
        if d.present == WITH_ACCELERATORS:
            # Present exactly for the devices whose vendor tool reports the figure.
            figure = _FLEET_FIGURE[d.name]
            reported = [x for x in devices if x.get(figure) is not None]
            assert len(samples) == len(reported), (d.name, len(samples), devices)
        else:
            assert samples, f"{d.name} has no sample after the request mix"

    # What the mix did shows where it should.
    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in families[name].samples
                   if s.name.endswith("_total") and labels.items() <= s.labels.items())  # fmt: skip

    assert value("tokenmill_requests", tenant="metrics-pack", status="200") == 2
    assert value("tokenmill_requests_refused", tenant="metrics-pack", status="429") == 1
    assert value("tokenmill_pii_findings", tenant="metrics-pack", direction="prompt") >= 2
    assert value("tokenmill_completion_tokens", tenant="metrics-pack", model=MODEL) > 0
    [used] = [s for s in families["tokenmill_budget_used_ratio"].samples
              if s.labels["holder"] == "tenant:metrics-pack"]  # fmt: skip
    assert used.labels["period"] == "month" and 0 <= used.value < 1
    [verified] = families["tokenmill_audit_verify_ok"].samples
    assert verified.value == 1  # the integrity check at start passed
    tpot = [s for s in families["tokenmill_time_per_output_token_seconds"].samples
            if s.name.endswith("_count") and s.labels["model"] == MODEL]  # fmt: skip
    assert tpot and tpot[0].value >= 1  # an answer of two tokens or more was timed

    # And nothing is emitted that the list does not name (`_created` timestamps aside).
    known = {d.family for d in docs.values()}
    created = {name + "_created" for name in known}  # the client's start-time gauges
    unlisted = {n for n in families if n.startswith("tokenmill_")} - known - created
    assert unlisted == set(), f"emitted but not in docs/metrics.md: {sorted(unlisted)}"
