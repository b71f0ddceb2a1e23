"""Roles, what each may do, and which keys may be used where.

Platform roles (platform-admin, operator, auditor) live in the system tenant and reach every
tenant; tenant roles (tenant-admin, member, agent) reach only their own. A key's scopes say on
which surface it is accepted at all: `inference` (the OpenAI API) or `management` (/admin).
"""

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform-admin"  # everything, every tenant
    OPERATOR = "operator"  # runs the fleet: deployments, usage, metrics
    AUDITOR = "auditor"  # reads usage, the audit log and the compliance report, nothing else
    TENANT_ADMIN = "tenant-admin"  # its own tenant's keys, agents and usage; may infer
    MEMBER = "member"  # infers
    AGENT = "agent"  # infers, within its agent's allow-lists and budget


class Scope(StrEnum):
    INFERENCE = "inference"
    MANAGEMENT = "management"


class Permission(StrEnum):
    INFER = "infer"
    TENANTS_READ = "tenants:read"
    TENANTS_WRITE = "tenants:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    USERS_READ = "users:read"  # console users
    USERS_WRITE = "users:write"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    DEPLOYMENTS_READ = "deployments:read"
    DEPLOYMENTS_WRITE = "deployments:write"
    USAGE_READ = "usage:read"
    AUDIT_READ = "audit:read"
    METRICS_READ = "metrics:read"
    CONFIG_READ = "config:read"  # the compliance doctor's view of the running configuration
    PRICES_READ = "prices:read"
    PRICES_WRITE = "prices:write"
    INVOICES_READ = "invoices:read"
    INVOICES_WRITE = "invoices:write"  # close a period
    KPIS_READ = "kpis:read"  # revenue and tokens across all tenants
    BUDGETS_READ = "budgets:read"
    BUDGETS_WRITE = "budgets:write"  # money budgets and prepaid credits


P = Permission
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.PLATFORM_ADMIN: frozenset(P) - {P.INFER},  # an admin key that can infer leaks far
    Role.OPERATOR: frozenset(
        {
            P.TENANTS_READ,
            P.DEPLOYMENTS_READ,
            P.DEPLOYMENTS_WRITE,
            P.USAGE_READ,
            P.METRICS_READ,
            P.CONFIG_READ,
            P.PRICES_READ,
            P.KPIS_READ,
            P.BUDGETS_READ,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            P.USAGE_READ,
            P.AUDIT_READ,
            P.METRICS_READ,
            P.CONFIG_READ,
            P.PRICES_READ,
            P.INVOICES_READ,
            P.KPIS_READ,
            P.BUDGETS_READ,
            P.USERS_READ,  # who may sign in is part of an access review
        }
    ),
    Role.TENANT_ADMIN: frozenset(
        {
            P.INFER,
            P.KEYS_READ,
            P.KEYS_WRITE,
            P.USERS_READ,
            P.USERS_WRITE,
            P.AGENTS_READ,
            P.AGENTS_WRITE,
            P.USAGE_READ,
            P.PRICES_READ,
            P.INVOICES_READ,
        }
    ),
    Role.MEMBER: frozenset({P.INFER}),
    Role.AGENT: frozenset({P.INFER}),
}

PLATFORM_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.OPERATOR, Role.AUDITOR})
# Which scopes a key of each role may hold (and holds by default).
ALLOWED_SCOPES: dict[Role, frozenset[Scope]] = {
    role: frozenset(
        ({Scope.INFERENCE} if P.INFER in GRANTS[role] else set())
        | ({Scope.MANAGEMENT} if GRANTS[role] - {P.INFER} else set())
    )
    for role in Role
}
# Roles whose keys a tenant-admin may issue: never a platform role, never more than its own.
TENANT_ISSUABLE = frozenset({Role.TENANT_ADMIN, Role.MEMBER, Role.AGENT})


def permits(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]


def scope_for(permission: Permission) -> Scope:
    return Scope.INFERENCE if permission is Permission.INFER else Scope.MANAGEMENT


def listed(members: Iterable[StrEnum]) -> str:
    """Plain names for messages: "inference, management", never "[<Scope.INFERENCE: ...>]"."""
    return ", ".join(sorted(str(m) for m in members)) or "none"
