"""`tokenmill doctor`: where the running configuration breaks its compliance profile."""

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenmill.core.usage import MeteringHealth
from tokenmill.security.pii import PiiMode
from tokenmill.security.profiles import MIN_AUDIT_RETENTION_DAYS, Profile, is_local_endpoint

Status = Literal["ok", "warn", "fail"]
_MASKING = (PiiMode.MASK, PiiMode.BLOCK)


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Facts:
    """What the doctor looks at, gathered from the running server."""

    profile: Profile
    host: str
    tls: bool
    pii_mode: PiiMode
    tenant_pii_modes: dict[str, PiiMode]
    audit_ok: bool
    audit_reason: str | None
    audit_retention_days: int
    seal_problems: list[str] = field(default_factory=list)  # invoices not as issued
    trigger_problems: list[str] = field(default_factory=list)  # immutability triggers gone
    metering: MeteringHealth | None = None
    deployments: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)  # live keys, as the API lists them


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _strict(facts: Facts, status: Status) -> Status:
    """A rule the profile requires fails; elsewhere it is advice."""
    return status if facts.profile is Profile.FINANCE or status == "ok" else "warn"


def _transport(f: Facts) -> Finding:
    if f.tls:
        return Finding("tls", "ok", "TLS terminates in the gateway")
    if f.profile is Profile.FINANCE:
        return Finding("tls", "fail", "the finance profile requires TLS", "--tls-cert/--tls-key")
    if not _loopback(f.host):
        return Finding(
            "tls",
            "warn",
            f"plain HTTP on {f.host}, reachable from the network",
            "give --tls-cert/--tls-key, or bind 127.0.0.1 behind a TLS proxy",
        )
    return Finding("tls", "ok", f"plain HTTP on loopback ({f.host}) only")


def _pii(f: Facts) -> Finding:
    if f.profile is not Profile.FINANCE:
        return Finding("pii", "ok", f"PII guard default '{f.pii_mode}'")
    lax = sorted(t for t, m in f.tenant_pii_modes.items() if m not in _MASKING)
    if f.pii_mode not in _MASKING or lax:
        who = f"default '{f.pii_mode}'" + (f", tenants {lax}" if lax else "")
        return Finding(
            "pii",
            "fail",
            f"finance requires PII masking: {who}",
            "TOKENMILL_PII_MODE=mask; tokenmill tenants set-pii NAME mask",
        )
    return Finding("pii", "ok", "PII masked or blocked for every tenant")


def _integrity(f: Facts) -> list[Finding]:
    """Invoices as issued and the triggers that keep them so: every profile fails on these."""
    seals = (
        Finding(
            "invoice-seals",
            "fail",
            "; ".join(f.seal_problems),
            "investigate: an issued invoice was changed around the database's refusal",
        )
        if f.seal_problems
        else Finding("invoice-seals", "ok", "every invoice matches its seal and the audit log")
    )
    trig = (
        Finding(
            "db-triggers",
            "fail",
            "; ".join(f.trigger_problems),
            "a restart restores them (under finance it refuses: start once under another "
            "profile), then `tokenmill audit verify`",
        )
        if f.trigger_problems
        else Finding("db-triggers", "ok", "the triggers that keep invoices immutable are in place")
    )
    return [seals, trig]


def _audit(f: Facts) -> list[Finding]:
    chain = (
        Finding("audit-chain", "ok", "hash chain, signed head and checkpoints verify")
        if f.audit_ok
        else Finding(
            "audit-chain",
            "fail",
            f"the audit log does not verify: {f.audit_reason}",
            "investigate: `tokenmill audit verify` names the first bad record",
        )
    )
    days = f.audit_retention_days
    if days >= MIN_AUDIT_RETENTION_DAYS:
        return [chain, Finding("audit-retention", "ok", f"audit records kept {days} days")]
    short = Finding(
        "audit-retention",
        _strict(f, "fail"),
        f"audit records kept {days} days, under the {MIN_AUDIT_RETENTION_DAYS} the law "
        "asks (China's Cybersecurity Law: >= 6 months)",
        f"TOKENMILL_AUDIT_RETENTION_DAYS={MIN_AUDIT_RETENTION_DAYS} or more",
    )
    return [chain, short]


def _models(f: Facts) -> Finding:
    remote = sorted(
        d["name"]
        for d in f.deployments
        if d.get("endpoint") and not is_local_endpoint(str(d["endpoint"]))
    )
    if not remote:
        return Finding("local-models", "ok", "every model runs on premises")
    return Finding(
        "local-models",
        _strict(f, "fail"),
        f"models served from elsewhere: {remote}",
        "finance allows local models only: remove them or serve them here",
    )


def _serving(f: Facts) -> Finding:
    failed = [d for d in f.deployments if d.get("state") == "failed"]
    if failed:
        return Finding(
            "models-serving",
            "fail",
            "; ".join(f"{d['name']} failed: {d.get('failure')}" for d in failed),
            "follow the hint, then `tokenmill models remove` and deploy again (or restart)",
        )
    down = sorted(d["name"] for d in f.deployments if d.get("state") in ("starting", "degraded"))
    if down:
        return Finding("models-serving", "warn", f"not every replica is ready: {down}")
    return Finding("models-serving", "ok", f"{len(f.deployments)} model(s), every replica ready")


def _budgets(f: Facts) -> list[Finding]:
    if f.profile is not Profile.FINANCE:
        return []
    infer = [
        k
        for k in f.keys
        if k["role"] in ("member", "tenant-admin", "agent") and "inference" in k["scopes"]
    ]
    unbudgeted = sorted(k["id"] for k in infer if k["budget_tokens"] is None)
    unexpiring = sorted(k["id"] for k in infer if k["expires_at"] is None)
    out = [
        Finding(
            "budgets",
            "fail",
            f"inference keys without a budget: {unbudgeted}",
            "rotate them into keys with --budget-tokens",
        )
        if unbudgeted
        else Finding("budgets", "ok", "every inference key has a hard budget")
    ]
    if unexpiring:
        out.append(
            Finding(
                "key-expiry",
                "warn",
                f"inference keys that never expire: {unexpiring}",
                "give keys an --expires-at and rotate them",
            )
        )
    return out


def _failover(f: Facts) -> list[Finding]:
    if f.profile is not Profile.MANUFACTURING:
        return []
    single = sorted(d["name"] for d in f.deployments if int(d.get("max_replicas", 1)) < 2)
    if not single:
        return [Finding("failover", "ok", "every model can run on two replicas or more")]
    return [
        Finding(
            "failover",
            "warn",
            f"models with one replica, no failover: {single}",
            "tokenmill models scale NAME --min 2 --max N",
        )
    ]


def _metering(f: Facts) -> Finding:
    h = f.metering
    if h is None:
        return Finding("metering", "ok", "usage is metered (not asked)")
    problem = h.problem
    if problem is None:
        return Finding(
            "metering",
            "ok",
            f"every record reaches the ledger ({h.ledger_pending} in flight, "
            f"{h.ledger_lag_s:.1f} s behind)",
        )
    at_risk = bool(h.held or h.journal_error or h.ledger_error)
    return Finding(
        "metering",
        "fail" if at_risk else "warn",
        problem,
        "free space on the data directory's disk (the records are written when it has room)"
        if h.held or h.journal_error
        else "see the log for the database's error",
    )


def examine(f: Facts) -> list[Finding]:
    return [
        Finding("profile", "ok", f"compliance profile '{f.profile}'"),
        Finding(
            "content-storage",
            "ok",
            "prompts and answers are never written to disk (the ledger keeps token counts, "
            "the audit log kinds and ids); Responses API conversations stay in memory up to "
            "1 h for previous_response_id, unless sent with store: false",
        ),
        _transport(f),
        _pii(f),
        *_audit(f),
        *_integrity(f),
        _metering(f),
        _models(f),
        _serving(f),
        *_budgets(f),
        *_failover(f),
    ]
