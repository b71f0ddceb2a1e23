"""Tables. Alembic migrations in `migrations/` are the source of truth for the schema;
these mappings must match them (a test compares the two)."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Its share of a busy model relative to other tenants' (the fair queue's VTC weight).
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # off | log | mask | block for its traffic; None: the server's default (its profile's).
    pii_mode: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # The kinds of personal data the guard looks for (security/pii/kinds.py); None: the server's.
    pii_kinds: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    scopes: Mapped[str] = mapped_column(String(64), server_default="")  # comma-separated
    # Allow-lists (None: anything) and limits (None: unlimited); see security/keys.py.
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    tools: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # A tool offered off `tools`: refuse the request, or drop the tool (security/keys.py).
    tool_policy: Mapped[str] = mapped_column(String(8), server_default="refuse")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_period: Mapped[str] = mapped_column(String(8), server_default="total")
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", name="fk_api_keys_agent"), nullable=True
    )
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rotated_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Whose budget it spends: the first key of its rotation line (None: its own).
    budget_key: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


class Agent(Base):
    """An agent: a principal of its own, acting for an owner, under a profile's limits."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_agents_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Deployment(Base):
    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32))
    model_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    replicas: Mapped[int] = mapped_column(Integer)  # how many it starts with
    min_replicas: Mapped[int] = mapped_column(Integer)  # the autoscaler's range; 0: scale to zero
    max_replicas: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReplicaInstance(Base):
    """A replica as data: where it runs and in what state, written by the controller that owns
    it; gateways and the CLI read it (ARCHITECTURE.md: control plane and data plane)."""

    __tablename__ = "replica_instances"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128), index=True)
    node: Mapped[str] = mapped_column(String(255))
    engine: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)  # e.g. ["GPU:0", "GPU:1"]
    state: Mapped[str] = mapped_column(String(16))
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # unix s
    heartbeat_at: Mapped[float] = mapped_column(Float)  # unix s: its controller still owns it


class NodeCordon(Base):
    """A node drained for maintenance: no replica is placed on it until it is undrained."""

    __tablename__ = "node_cordons"

    node: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(1000))
    at: Mapped[float] = mapped_column(Float)  # unix s


class User(Base):
    """A person who signs in to the console, in one tenant, with one role."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))  # scrypt (security/passwords.py)
    created_at: Mapped[float] = mapped_column(Float)  # unix s
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")  # in a row
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class ConsoleSession(Base):
    """A signed-in browser: a user's, or a management key's (signing in with the key)."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie
    tenant: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    csrf: Mapped[str] = mapped_column(String(64))  # sent back in X-CSRF-Token on writes
    created_at: Mapped[float] = mapped_column(Float)
    seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # logout or revocation


class UsageRow(Base):
    __tablename__ = "usage_records"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    deployment: Mapped[str] = mapped_column(String(128))
    replica: Mapped[str] = mapped_column(String(160))
    endpoint: Mapped[str] = mapped_column(String(16))
    stream: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    usage_source: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    queued_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditRecord(Base):
    """One entry of the append-only, hash-chained audit log (`security/audit.py`)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))  # UTC, ISO 8601: hashed as stored
    actor: Mapped[str] = mapped_column(String(200))
    on_behalf_of: Mapped[str | None] = mapped_column(String(200), nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str | None] = mapped_column(String(300), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last record, signed with a key kept outside the database: cutting records
    off the end leaves a valid chain, but not a head that matches it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
    # Retention: the chain now starts after base_seq, whose hash is kept here, signed.
    base_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    base_hash: Mapped[str] = mapped_column(String(64), server_default="0" * 64)
    base_mac: Mapped[str] = mapped_column(String(64), server_default="")


class PriceRule(Base):
    """One price: never edited, only superseded by a later `effective_from` or version."""

    __tablename__ = "price_rules"
    __table_args__ = (
        UniqueConstraint(
            "book",
            "version",
            "model",
            "token_class",
            "tenant",
            "currency",
            name="uq_price_rules_identity",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    book: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(128))  # a model name, or "*" for any
    token_class: Mapped[str] = mapped_column(String(16))  # input | cached_input | output
    currency: Mapped[str] = mapped_column(String(3))
    pico_per_token: Mapped[int] = mapped_column(BigInteger)  # = micro-units per 1M tokens
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)  # an override
    effective_from: Mapped[float] = mapped_column(Float)  # unix seconds
    source: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageCharge(Base):
    """A usage record's tokens of one class at the price rule that applied: exact pico-units."""

    __tablename__ = "usage_charges"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_class: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float, index=True)  # when the usage happened
    tokens: Mapped[int] = mapped_column(BigInteger)
    rule_id: Mapped[str] = mapped_column(ForeignKey("price_rules.id"))
    currency: Mapped[str] = mapped_column(String(3))
    pico: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


class UsageRollup(Base):
    """Usage summed per UTC hour and per UTC day (`bucket_s` 3600 or 86400, `bucket` its start,
    unix s) and per tenant, key, model and agent ("" for none). Written in the transaction that
    inserts the ledger rows, counting only rows that went in (`metering/rollup.py`), so it is
    the ledger's sums exactly; the day grain keeps long windows small. `errors`: outcome
    "error" or status >= 500 (a client that hung up, 499, is not one). `ttft_ms_<b>`: records
    whose TTFT was above the previous bound and at most b ms; `ttft_ms_inf`: above the last."""

    __tablename__ = "usage_rollup"
    __table_args__ = (Index("ix_usage_rollup_tenant", "tenant", "bucket_s", "bucket"),)

    bucket_s: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_50: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_100: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_250: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_500: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_1000: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_2500: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_5000: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_10000: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_30000: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_inf: Mapped[int] = mapped_column(BigInteger)


class RevenueRollup(Base):
    """Charges summed per bucket (as `UsageRollup`), tenant, key, model, agent and currency:
    exact pico-units, written in the transaction that inserts the charges (`billing/rating.py`)."""

    __tablename__ = "revenue_rollup"
    __table_args__ = (Index("ix_revenue_rollup_tenant", "tenant", "bucket_s", "bucket"),)

    bucket_s: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent: Mapped[str] = mapped_column(String(32), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    pico: Mapped[int] = mapped_column(BigInteger)


class Invoice(Base):
    """A closed period of one tenant in one currency; immutable (database triggers refuse)."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant", "period_start", "currency", name="uq_invoices_period"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str] = mapped_column(String(120), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[float] = mapped_column(Float)
    period_end: Mapped[float] = mapped_column(Float)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tax_rate: Mapped[str] = mapped_column(String(16))  # a decimal, e.g. "0.06"
    body: Mapped[dict[str, object]] = mapped_column(JSON)  # the invoice as issued, lines included


class InvoiceSeal(Base):
    """An issued invoice's seal: the SHA-256 of the invoice as stored and of the charges it
    billed (`store/seals.py`), and its HMAC under the audit key. Written once with the invoice;
    a row left by migration 0011 (invoices issued before seals) has none until the first start
    seals it. Database triggers refuse any other change."""

    __tablename__ = "invoice_seals"

    invoice_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MoneyBudget(Base):
    """A spending limit for a tenant, key or agent in one currency; replaced, never edited."""

    __tablename__ = "budgets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(
        String(100), index=True
    )  # tenant:<t> | key:<id> | agent:<id>
    currency: Mapped[str] = mapped_column(String(3))
    limit_micros: Mapped[int] = mapped_column(BigInteger)  # micro-units: room for 9.2e12
    period: Mapped[str] = mapped_column(String(8))  # day | month | total
    soft_pct: Mapped[int] = mapped_column(Integer)  # an alert once spend passes this share
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Credit(Base):
    """Prepaid money granted to a tenant: together, the most it may ever spend."""

    __tablename__ = "credits"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(300))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DiscountTier(Base):
    """A volume discount: a month with at least `min_tokens` billed tokens gets `percent` off
    its usage. A tenant's own tiers replace the general ones."""

    __tablename__ = "discount_tiers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    min_tokens: Mapped[int] = mapped_column(BigInteger)
    percent: Mapped[str] = mapped_column(String(16))  # a decimal, e.g. "5" or "2.5"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PowerSample(Base):
    """One power reading of a node: measured (RAPL, NVML, a vendor tool) or estimated from
    TDP x utilisation, and which (`basis`), so an estimate is never shown as a measurement."""

    __tablename__ = "power_samples"
    __table_args__ = (Index("ix_power_samples_node_at", "node", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)  # unix seconds
    watts: Mapped[float] = mapped_column(Float)  # average since the previous sample, or spot
    estimated: Mapped[bool] = mapped_column(Boolean)
    basis: Mapped[str] = mapped_column(String(300))
