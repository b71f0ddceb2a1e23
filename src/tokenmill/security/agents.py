"""Agents as principals: an identity of its own, acting for an owner, with its own key,
allow-lists, rate limits and budget (from a profile, overridable at registration)."""

import dataclasses
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenmill.core.errors import Conflict, InvalidRequest, NotFound
from tokenmill.core.ids import new_id
from tokenmill.security.accounts import Accounts, IssuedKey, KeySpec
from tokenmill.security.grants import within_holder
from tokenmill.security.keys import KeyLimits, Principal, ToolPolicy
from tokenmill.security.roles import Role
from tokenmill.store.tables import Agent, ApiKey, Tenant

_LIMITS = {f.name for f in dataclasses.fields(KeyLimits)}
_SPEC = {"models", "tools", "tool_policy", "expires_at"}


@cache
def profiles() -> dict[str, dict[str, Any]]:
    text = resources.files("tokenmill.security").joinpath("data/agent_profiles.toml").read_text()
    return tomllib.loads(text)


def profile_spec(name: str, overrides: Mapping[str, Any], owner: str) -> KeySpec:
    """The profile's key spec with `overrides` (None values ignored) applied."""
    try:
        profile = profiles()[name]
    except KeyError:
        raise InvalidRequest(
            f"unknown agent profile '{name}'; choose from {sorted(profiles())}", param="profile"
        ) from None
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - _LIMITS - _SPEC
    if unknown:
        raise InvalidRequest(f"unknown agent settings {sorted(unknown)}")
    limits = KeyLimits(**{k: given.get(k, profile[k]) for k in _LIMITS if k in profile})
    tools, models = given.get("tools", profile.get("tools")), given.get("models")
    policy = given.get("tool_policy", profile.get("tool_policy", ToolPolicy.REFUSE))
    try:
        tool_policy = ToolPolicy(policy)
    except ValueError:
        choices = [p.value for p in ToolPolicy]
        raise InvalidRequest(
            f"tool_policy must be one of {choices}, not {policy!r}", param="tool_policy"
        ) from None
    return KeySpec(
        role=Role.AGENT,
        tools=frozenset(tools) if tools is not None else frozenset(),
        tool_policy=tool_policy,
        models=frozenset(models) if models is not None else None,
        expires_at=given.get("expires_at"),
        limits=limits,
        owner=owner,
    )


def _view(row: Agent) -> dict[str, object]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "owner": row.owner,
        "profile": row.profile,
        "created_at": row.created_at.isoformat(),
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
    }


class Agents:
    def __init__(self, engine: Engine, accounts: Accounts) -> None:
        self._engine = engine
        self._accounts = accounts

    def register(
        self,
        tenant: str,
        name: str,
        owner: str,
        profile: str,
        overrides: Mapping[str, Any] | None = None,
        holder: Principal | None = None,
    ) -> tuple[dict[str, object], IssuedKey]:
        """`holder`, the key registering it: the agent's limits stay within its own."""
        spec = profile_spec(profile, overrides or {}, owner).checked(tenant)  # before any row
        if holder is not None:
            spec = within_holder(holder, spec)
        row = Agent(
            id=new_id("agt"),
            tenant=tenant,
            name=name,
            owner=owner,
            profile=profile,
            created_at=datetime.now(UTC),
        )
        try:
            with Session(self._engine, expire_on_commit=False) as s, s.begin():
                if s.get(Tenant, tenant) is None:
                    raise NotFound(f"tenant '{tenant}' does not exist", param="tenant")
                s.add(row)
        except IntegrityError:
            raise Conflict(f"tenant '{tenant}' already has an agent '{name}'") from None
        key = self._accounts.create_key(
            tenant, f"agent:{name}", dataclasses.replace(spec, agent_id=row.id)
        )
        return _view(row), key

    def list(self, reach: str | None = None) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            q = select(Agent).order_by(Agent.created_at)
            if reach is not None:
                q = q.where(Agent.tenant == reach)
            return [_view(r) for r in s.scalars(q)]

    def retire(self, agent_id: str, reach: str | None = None) -> dict[str, object]:
        """Retire the agent and revoke every key it holds, effective on the next request."""
        now = datetime.now(UTC)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(Agent, agent_id)
            if row is None or (reach is not None and row.tenant != reach):
                raise NotFound(f"agent '{agent_id}' does not exist", param="agent_id")
            row.retired_at = row.retired_at or now
            keys = list(s.scalars(select(ApiKey.id).where(ApiKey.agent_id == agent_id)))
            s.execute(
                update(ApiKey)
                .where(ApiKey.agent_id == agent_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        for key_id in keys:
            self._accounts.keyring.remove(key_id)
        return _view(row)
