"""Compliance profiles: one setting picks the defaults and the rules a deployment keeps.

- `sme`: safe defaults, minimum ceremony (the PII guard off: no cost on the hot path).
- `manufacturing`: stability first: conservative limits, slow scale-down, spare replicas.
- `finance`: no content stored, PII masked, audit verified at start, local models only,
  hard budgets on every inference key, TLS required.

A profile fills only the settings left unset; `tokenmill doctor` (security/doctor.py) reports
where the running configuration breaks its profile's rules.
"""

import ipaddress
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse


class Profile(StrEnum):
    SME = "sme"
    MANUFACTURING = "manufacturing"
    FINANCE = "finance"


DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.SME: {"pii_mode": "off"},
    Profile.MANUFACTURING: {
        "pii_mode": "off",
        "queue_wait_s": 20.0,  # fail fast to the caller's own retry rather than pile up
        "scale_down_after_s": 600.0,  # no flapping on bursty shop-floor load
        "auth_failures_per_minute": 5,
    },
    Profile.FINANCE: {
        "pii_mode": "mask",
        "audit_retention_days": 365,
        "auth_failures_per_minute": 5,
    },
}

MIN_AUDIT_RETENTION_DAYS = 180  # China's Cybersecurity Law art. 21: network logs >= 6 months


def is_local_endpoint(url: str) -> bool:
    """Loopback or private address: the model runs on premises (finance: local models only)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name resolves wherever DNS says: not provably local
    return addr.is_loopback or addr.is_private
