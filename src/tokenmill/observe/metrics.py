"""Prometheus metrics for the gateway. One registry per app, so tests can run several apps."""

from collections import Counter as Counter_
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tokenmill.core.usage import MeteringHealth, UsageRecord
from tokenmill.runtime.replica import Replica, ReplicaState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Time per output token: the dashboards' and alerts' SLO targets (20, 50, 100, 200, 500 ms)
# are bucket bounds, so the share under each is exact.
TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)


class _ReplicaStates(Collector):
    """Replica state read at scrape time, so it can never go stale."""

    def __init__(self, replicas: Callable[[], Iterable[Replica]]) -> None:
        self._replicas = replicas

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "tokenmill_replica_state",
            "1 for the state each replica is in",
            labels=["deployment", "replica", "state"],
        )
        for r in self._replicas():
            for state in ReplicaState:
                fam.add_metric([r.spec.deployment, r.id, state.value], float(r.state is state))
        yield fam


class _QueueDepths(Collector):
    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "tokenmill_queue_depth", "Requests waiting in the gateway", labels=["model"]
        )
        for model, depth in self._depths().items():
            fam.add_metric([model], float(depth))
        yield fam


class _MeteringLag(Collector):
    """Whether every token is reaching the ledger, read at scrape time."""

    def __init__(self, health: Callable[[], MeteringHealth]) -> None:
        self._health = health

    def collect(self) -> Iterable[GaugeMetricFamily]:
        h = self._health()
        yield GaugeMetricFamily(
            "tokenmill_usage_journal_held_records",
            "Usage records the disk refused, held in memory until it takes them",
            value=h.held,
        )
        yield GaugeMetricFamily(
            "tokenmill_ledger_lag_records",
            "Usage records in the journal not yet in the ledger",
            value=h.ledger_pending,
        )
        yield GaugeMetricFamily(
            "tokenmill_ledger_lag_seconds",
            "How long the oldest record not yet in the ledger has waited",
            value=h.ledger_lag_s,
        )


_DEVICE_GAUGES = {
    "utilisation": "Accelerator utilisation, 0 to 1, as its vendor's tool reports it",
    "memory_bytes": "Accelerator memory",
    "memory_used_bytes": "Accelerator memory in use",
    "power_watts": "Accelerator power draw",
    "temperature_celsius": "Accelerator temperature",
    "healthy": "1 when the vendor's tool reports the accelerator healthy",
}


class _Devices(Collector):
    """Per-accelerator telemetry from the node's last discovery (fleet/watch.py)."""

    def __init__(self, samples: Callable[[], list[dict[str, object]]]) -> None:
        self._samples = samples

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["node", "device", "vendor", "model"]
        families = {
            name: GaugeMetricFamily(f"tokenmill_device_{name}", doc, labels=labels)
            for name, doc in _DEVICE_GAUGES.items()
        }
        for sample in self._samples():
            values = [str(sample[label]) for label in labels]
            for name, family in families.items():
                value = sample.get(name)
                if isinstance(value, bool | int | float):  # unknown figures are left out
                    family.add_metric(values, float(value))
        yield from families.values()


class _Budgets(Collector):
    """How much of each money budget its holder has used this period, read at scrape time."""

    def __init__(self, ratios: Callable[[], list[tuple[str, str, str, float]]]) -> None:
        self._ratios = ratios

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "tokenmill_budget_used_ratio",
            "Share of a money budget spent and held this period (1: exhausted)",
            labels=["budget", "holder", "period"],
        )
        for budget, holder, period, ratio in self._ratios():
            fam.add_metric([budget, holder, period], ratio)
        yield fam


class _AuditVerified(Collector):
    def __init__(self, ok: Callable[[], bool | None]) -> None:
        self._ok = ok

    def collect(self) -> Iterable[GaugeMetricFamily]:
        ok = self._ok()
        if ok is not None:  # not checked yet: no sample rather than a guess
            yield GaugeMetricFamily(
                "tokenmill_audit_verify_ok",
                "1 when the last integrity check (audit chain, invoice seals, triggers) passed",
                value=float(ok),
            )


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tokenmill_requests", "Requests by outcome", ["model", "tenant", "status"], registry=r
        )
        self.pii = Counter(
            "tokenmill_pii_findings",
            "Personal data found by the content guard (kinds only, never the text)",
            ["tenant", "direction", "kind"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "tokenmill_prompt_tokens", "Prompt tokens metered", ["model", "tenant"], registry=r
        )
        self.cached_tokens = Counter(
            "tokenmill_cached_prompt_tokens",
            "Prompt tokens served from cache",
            ["model", "tenant"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "tokenmill_completion_tokens",
            "Completion tokens metered",
            ["model", "tenant"],
            registry=r,
        )
        self.ttft = Histogram(
            "tokenmill_time_to_first_token_seconds",
            "Time to first token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "tokenmill_time_per_output_token_seconds",
            "Decode time per output token after the first (requests with two or more)",
            ["model"],
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "tokenmill_request_duration_seconds",
            "End-to-end request duration",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tokenmill_requests_in_flight", "Requests being served", ["model"], registry=r
        )
        self.refused = Counter(
            "tokenmill_requests_refused",
            "Requests refused before reaching a replica (429 overload, 503 unavailable)",
            ["model", "tenant", "status"],
            registry=r,
        )

        self._children: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._in_flight: dict[str, Any] = {}

    def in_flight_of(self, model: str) -> Any:
        gauge = self._in_flight.get(model)
        if gauge is None:
            gauge = self._in_flight[model] = self.in_flight.labels(model)
        return gauge

    def pii_found(self, tenant: str, direction: str, kinds: "Counter_[str]") -> None:
        for kind, n in kinds.items():
            self.pii.labels(tenant, direction, kind).inc(n)

    def watch_replicas(self, replicas: Callable[[], Iterable[Replica]]) -> None:
        self.registry.register(_ReplicaStates(replicas))

    def watch_queues(self, depths: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_QueueDepths(depths))

    def watch_devices(self, samples: Callable[[], list[dict[str, object]]]) -> None:
        self.registry.register(_Devices(samples))

    def watch_metering(self, health: Callable[[], MeteringHealth]) -> None:
        self.registry.register(_MeteringLag(health))

    def watch_budgets(self, ratios: Callable[[], list[tuple[str, str, str, float]]]) -> None:
        self.registry.register(_Budgets(ratios))

    def watch_audit(self, ok: Callable[[], bool | None]) -> None:
        self.registry.register(_AuditVerified(ok))

    def observe(self, rec: UsageRecord, *, decode_timed: bool = True) -> None:
        """`decode_timed`: False for a whole answer whose first token came only with its end,
        which has no time per output token to report."""
        key = (rec.model, rec.tenant, rec.status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the increments: do them once
            model, tenant = rec.model, rec.tenant
            children = self._children[key] = (
                self.requests.labels(model, tenant, str(rec.status)),
                self.prompt_tokens.labels(model, tenant),
                self.cached_tokens.labels(model, tenant),
                self.completion_tokens.labels(model, tenant),
                self.ttft.labels(model),
                self.latency.labels(model),
                self.tpot.labels(model),
            )
        requests, prompt, cached, completion, ttft, latency, tpot = children
        requests.inc()
        prompt.inc(rec.prompt_tokens)
        cached.inc(rec.cached_tokens)
        completion.inc(rec.completion_tokens)
        if rec.ttft_ms is not None:
            ttft.observe(rec.ttft_ms / 1000)
            if decode_timed and rec.completion_tokens >= 2:  # bench/report.py's tpot()
                tpot.observe((rec.duration_ms - rec.ttft_ms) / 1000 / (rec.completion_tokens - 1))
        latency.observe(rec.duration_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
