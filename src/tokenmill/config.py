"""Settings, from flags, environment (TOKENMILL_*) or defaults. Safe by default: loopback only."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tokenmill.scheduling.job import Band
from tokenmill.security.pii import PiiMode, check_available, parse_kinds
from tokenmill.security.profiles import DEFAULTS, Profile

DEFAULT_PORT = 8400


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokenmill"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENMILL_", extra="ignore")

    # The compliance profile: sme | manufacturing | finance (security/profiles.py). It fills
    # the settings below that are left unset, and `tokenmill doctor` checks its rules.
    profile: Profile = Profile.SME
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # default: SQLite in data_dir
    admin_key: SecretStr | None = None  # bootstrap admin key instead of a generated one
    # Signs the audit log's head; default: a key file made in data_dir on first start.
    audit_key: SecretStr | None = None
    # A second copy of the audit checkpoints (audit-checkpoints.log in data_dir), on other
    # storage: a file path (an append-only mount, a WORM share, another disk).
    audit_sink: Path | None = None
    # How long audit records are kept (China's Cybersecurity Law asks for >= 6 months).
    audit_retention_days: int = Field(default=365, ge=1)
    # How long the usage history (the hourly and daily rollups behind the console's charts and
    # usage pages) is kept; the ledger keeps every record regardless, and answers older windows.
    usage_history_days: int = Field(default=400, ge=1)
    # The PII guard's default mode for tenants without their own: off | log | mask | block
    # (default: the profile's).
    pii_mode: PiiMode = PiiMode.OFF
    # The kinds it looks for, for tenants without their own list: comma-separated names
    # (security/pii/kinds.py, e.g. "cn_id,cn_mobile,bank_card"); default every pattern kind.
    # person, location and address need the `pii` extra (Presidio) and a spaCy model:
    pii_kinds: Annotated[frozenset[str] | None, NoDecode] = None
    pii_ner_model: str = "en_core_web_lg"
    # A budgeted request that sets no output limit gets this one, so its reservation holds.
    budget_max_tokens: int = Field(default=1024, ge=1)
    # Billing: how long after a period ends usage may still arrive before it can be invoiced,
    # and the tax rate invoices apply unless a close names another (a decimal, "0.06").
    invoice_grace_s: float = Field(default=86400.0, ge=0)
    invoice_tax_rate: str = Field(default="0", pattern=r"^0(\.\d{1,6})?$")
    # How far concurrent requests may together pass a money budget (a decimal amount); with
    # reservations the only excess is a prompt longer than its bound, so 0 holds the line.
    budget_tolerance: str = Field(default="0", pattern=r"^\d{1,9}(\.\d{1,12})?$")
    # Usage as CloudEvents (OpenMeter's ingest, or any collector taking a CloudEvents batch):
    # where to send them, the source they carry (keep it stable: collectors dedup on
    # (id, source)), an optional bearer token, and how often to send.
    events_url: str | None = None
    events_source: str | None = None  # default: tokenmill/<hostname>
    events_token: SecretStr | None = None
    events_every_s: float = Field(default=30.0, gt=0)
    # How old a record must be before it is sent: most requests still running have ended.
    events_settle_s: float = Field(default=60.0, ge=0)
    # Failed key checks (a bad key, or none) one client address may make per minute before it
    # is locked out.
    auth_failures_per_minute: int = Field(default=10, ge=1)
    # Connections: one with no request in progress (new, or between keep-alive requests) is
    # closed after `http_idle_timeout_s`; a request's line and headers must all arrive within
    # `http_header_timeout_s` of their first byte, else 408 and the connection is closed.
    http_idle_timeout_s: int = Field(default=5, ge=1)
    http_header_timeout_s: int = Field(default=10, ge=1)
    max_body_bytes: int = 4 * 1024 * 1024
    # The longest a request waits in the gateway for a replica slot (queued behind others,
    # or while replicas start); past it, 429 with Retry-After.
    queue_wait_s: float = 30.0
    # The same for the batch band (`service_tier: "flex"`): patient work, refused at
    # admission when it could not be served in time rather than after a long wait.
    batch_queue_wait_s: float = Field(default=600.0, gt=0)
    # How a request picks among a model's replicas: where its prompt prefix is probably cached
    # (balanced against load), or plain round-robin (a baseline, for comparison).
    router: Literal["prefix-affinity", "round-robin"] = "prefix-affinity"
    # Where replicas' engines run: child processes of this one (local), or Ray actors on the
    # nodes of a Ray cluster (`pip install tokenmill[ray]`): the one at `ray_address`
    # ("HOST:PORT"), or a local head started for it when unset.
    runtime: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    # Who is served next when requests wait: the tenant owed the most service (weighted
    # virtual token counter), or first come, first served (a baseline, for comparison).
    fairness: Literal["vtc", "fcfs"] = "vtc"
    # Autoscaling, for deployments with a replica range: add one after requests have queued
    # this long, remove one after one fewer would have been half idle this long, and stop the
    # last (where min_replicas is 0) after this long without a request.
    scale_up_after_s: float = Field(default=10.0, gt=0)
    scale_down_after_s: float = Field(default=120.0, gt=0)
    scale_to_zero_after_s: float = Field(default=300.0, gt=0)
    upstream_timeout_s: float = 600.0
    deploy_default_model: bool = True
    # The web console: a session ends after this long without a request, and this long after
    # it began in any case (sign in again).
    console_idle_s: float = Field(default=3600.0, gt=0)
    console_session_s: float = Field(default=12 * 3600.0, gt=0)
    # When a response may leave: after its usage record is written to the OS ("write": survives
    # any crash of TokenMill, kill -9 included; the group fsync follows within about a
    # millisecond) or after that fsync ("fsync": survives power loss too; ~0.8 ms more per request).
    journal_sync: Literal["fsync", "write"] = "write"
    # What each node costs (economics): a TOML file, default economics.toml in data_dir.
    # No file: tokens, utilisation and revenue are still shown, costs are not.
    economics_file: Path | None = None
    # This machine's name in that file: its measured power (RAPL, NVML, vendor tools),
    # sampled this often, is recorded under it.
    # OpenTelemetry: one span per request, sent over OTLP/HTTP to this URL (e.g.
    # http://collector:4318/v1/traces); unset, tracing is off and costs nothing.
    otlp_endpoint: str | None = Field(default=None, max_length=2048)
    node_name: str = Field(default="local", min_length=1, max_length=64)
    power_sample_s: float = Field(default=60.0, gt=0)
    # TLS termination in the gateway: both files (PEM) or neither.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    @field_validator("pii_kinds", mode="before")
    @classmethod
    def _pii_kinds(cls, value: Any) -> frozenset[str] | None:
        if value is None or value == "":
            return None
        return check_available(parse_kinds(value.split(",") if isinstance(value, str) else value))

    @model_validator(mode="after")
    def _profile_defaults(self) -> "Settings":
        for name, value in DEFAULTS[self.profile].items():
            if name not in self.model_fields_set:
                setattr(self, name, type(getattr(self, name))(value))
        if self.profile is Profile.FINANCE and self.tls_certfile is None:
            raise ValueError(
                "the finance profile requires TLS: give --tls-cert and --tls-key "
                "(TOKENMILL_TLS_CERTFILE / TOKENMILL_TLS_KEYFILE)"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> "Settings":
        # One file alone would otherwise fall back to plain HTTP without a word.
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            given, missing = (
                ("certificate", "key (--tls-key, TOKENMILL_TLS_KEYFILE)")
                if self.tls_certfile is not None
                else ("key", "certificate (--tls-cert, TOKENMILL_TLS_CERTFILE)")
            )
            raise ValueError(
                f"TLS needs both a certificate and its private key: got a {given} but no {missing}"
            )
        return self

    def queue_waits(self) -> dict[Band, float]:
        return {Band.INTERACTIVE: self.queue_wait_s, Band.BATCH: self.batch_queue_wait_s}

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"

    @property
    def audit_checkpoints(self) -> list[Path]:
        """Where each audit append is checkpointed: beside the journal, then the sink."""
        sink = [self.audit_sink] if self.audit_sink is not None else []
        return [self.data_dir / "audit-checkpoints.log", *sink]

    @property
    def economics_path(self) -> Path:
        return self.economics_file or self.data_dir / "economics.toml"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
