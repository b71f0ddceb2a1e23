"""A key cannot grant more than its holder has. A tenant-admin with a 100-token budget, 2
requests a minute and an expiry could otherwise mint keys with none of those, and so shed
every limit it was given; the same holds for its allow-lists (models, tools) and scopes.
Platform roles (reach None) grant freely."""

import dataclasses
from datetime import UTC, datetime
from typing import TypeVar

from tokenmill.core.errors import Forbidden
from tokenmill.security.accounts import KeySpec
from tokenmill.security.keys import Principal
from tokenmill.security.roles import ALLOWED_SCOPES

T = TypeVar("T")
_LIMITS = ("rpm", "tpm", "concurrency", "budget_tokens")
# How much a budget of N allows over time: a one-off total least, then per month, then per day.
_PERIOD_RANK = {"total": 0, "month": 1, "day": 2}


def within_holder(holder: Principal, spec: KeySpec) -> KeySpec:
    """`spec` bounded by its issuer: a limit the holder has and the spec leaves open becomes
    the holder's; one beyond the holder's is refused (403, naming it)."""
    if holder.reach is None:
        return spec
    own, given = holder.limits, spec.limits
    bounded = {name: _at_most(name, getattr(given, name), getattr(own, name)) for name in _LIMITS}
    period = given.budget_period
    if own.budget_tokens is not None:
        if given.budget_tokens is None:
            period = own.budget_period  # the holder's budget, as the holder has it
        elif _PERIOD_RANK[period] > _PERIOD_RANK[own.budget_period]:
            raise _beyond("budget_period", period, own.budget_period)
    scopes = spec.scopes if spec.scopes is not None else ALLOWED_SCOPES[spec.role]
    return dataclasses.replace(
        spec,
        limits=dataclasses.replace(given, budget_period=period, **bounded),
        expires_at=_expiry(spec.expires_at, holder.expires_at),
        models=_within("models", spec.models, holder.models),
        tools=_within("tools", spec.tools, holder.tools),
        scopes=_within("scopes", scopes, holder.scopes),
    )


def _within(name: str, given: frozenset[T] | None, own: frozenset[T] | None) -> frozenset[T] | None:
    """An allow-list within the holder's: unset is the holder's; more is refused."""
    if own is None:
        return given
    if given is None:
        return own
    if not given <= own:
        raise _beyond(name, sorted(map(str, given - own)), sorted(map(str, own)))
    return given


def _at_most(name: str, given: int | None, own: int | None) -> int | None:
    if own is None:
        return given
    if given is None:
        return own
    if given > own:
        raise _beyond(name, given, own)
    return given


def _expiry(given: datetime | None, own: float | None) -> datetime | None:
    if own is None:
        return given
    holder_end = datetime.fromtimestamp(own, UTC)
    if given is None:
        return holder_end
    if given.astimezone(UTC) > holder_end:
        raise _beyond("expires_at", given.isoformat(), holder_end.isoformat())
    return given


def _beyond(name: str, given: object, own: object) -> Forbidden:
    return Forbidden(
        f"cannot grant {name} {given}: beyond this key's own ({own})",
        param=name,
        code="role_denied",
    )
