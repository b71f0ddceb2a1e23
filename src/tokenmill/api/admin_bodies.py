"""The admin surface's request bodies: strict (unknown fields refused), bounded."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tokenmill.security.accounts import MAX_WEIGHT, MIN_WEIGHT, KeySpec
from tokenmill.security.keys import KeyLimits, ToolPolicy
from tokenmill.security.roles import Role, Scope


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_nul(value: str) -> str:
    """A path or URL the operating system gets: a NUL byte ends it there (and `open` refuses
    it outright), so it is a bad request, not a server error."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# A file path or endpoint URL given to the operating system.
SystemString = Annotated[str, Field(max_length=1024), AfterValidator(_no_nul)]


class TenantIn(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    display_name: str | None = Field(default=None, max_length=200)
    weight: int = Field(default=1, ge=MIN_WEIGHT, le=MAX_WEIGHT)
    pii_mode: Literal["off", "log", "mask", "block"] | None = None
    pii_kinds: list[str] | None = Field(default=None, max_length=32)


class TenantPatch(Body):
    weight: int | None = Field(default=None, ge=MIN_WEIGHT, le=MAX_WEIGHT)
    # off | log | mask | block; null: back to the server's default
    pii_mode: Literal["off", "log", "mask", "block"] | None = None
    # the kinds the PII guard looks for (security/pii/kinds.py); null: the server's
    pii_kinds: list[str] | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _changes_something(self) -> "TenantPatch":
        if not self.model_fields_set:
            raise ValueError("nothing to change: give weight, pii_mode and/or pii_kinds")
        return self


class LimitsIn(Body):
    models: list[str] | None = Field(default=None, max_length=100)  # allow-list; None: all
    tools: list[str] | None = Field(default=None, max_length=200)  # allow-list; None: any
    # A request offering a tool off `tools`: refused (403), or the tool dropped from it.
    # None: "refuse" for a key, the profile's for an agent.
    tool_policy: Literal["refuse", "drop"] | None = None
    expires_at: datetime | None = None
    rpm: int | None = Field(default=None, ge=1, le=10**7)
    tpm: int | None = Field(default=None, ge=1, le=10**10)
    concurrency: int | None = Field(default=None, ge=1, le=10**5)
    budget_tokens: int | None = Field(default=None, ge=1, le=10**15)
    budget_period: Literal["total", "day", "month"] | None = None


class KeyIn(LimitsIn):
    tenant: str = Field(min_length=1, max_length=64)
    name: str = Field(default="default", min_length=1, max_length=200)
    role: Literal["platform-admin", "operator", "auditor", "tenant-admin", "member"] = "member"
    scopes: list[Literal["inference", "management"]] | None = None
    owner: str | None = Field(default=None, max_length=200)

    def spec(self) -> KeySpec:
        return KeySpec(
            role=Role(self.role),
            scopes=frozenset(Scope(x) for x in self.scopes) if self.scopes else None,
            models=frozenset(self.models) if self.models is not None else None,
            tools=frozenset(self.tools) if self.tools is not None else None,
            tool_policy=ToolPolicy(self.tool_policy or ToolPolicy.REFUSE),
            expires_at=self.expires_at,
            limits=KeyLimits(
                self.rpm,
                self.tpm,
                self.concurrency,
                self.budget_tokens,
                self.budget_period or "total",
            ),
            owner=self.owner,
        )


class RotateIn(Body):
    grace_s: int = Field(default=0, ge=0, le=7 * 86400)  # how long the old secret still works


class AgentIn(LimitsIn):
    tenant: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=200)
    profile: str = Field(default="standard", min_length=1, max_length=64)


class DeploymentIn(Body):
    name: str = Field(min_length=1, max_length=128)
    engine: Literal["llamacpp", "openai"]
    model_path: SystemString | None = None
    endpoint: SystemString | None = None
    upstream_model: str | None = Field(default=None, max_length=256)
    replicas: int = Field(default=1, ge=0, le=64)
    # The autoscaler's range (default: fixed at `replicas`); min 0 allows scale-to-zero.
    min_replicas: int | None = Field(default=None, ge=0, le=64)
    max_replicas: int | None = Field(default=None, ge=1, le=64)
    options: dict[str, int | float | str | bool] = Field(default_factory=dict)


class RolloutIn(Body):
    """A rolling update's new spec: what is given replaces the current (options whole)."""

    model_path: SystemString | None = None
    upstream_model: str | None = Field(default=None, max_length=256)
    options: dict[str, int | float | str | bool] | None = None


class DrainIn(Body):
    reason: str = Field(default="maintenance", min_length=1, max_length=1000)


class ReplicaRangeIn(Body):
    min_replicas: int | None = Field(default=None, ge=0, le=64)
    max_replicas: int | None = Field(default=None, ge=1, le=64)
