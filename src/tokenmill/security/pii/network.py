"""Network identities: email addresses, IPv4 and IPv6 addresses. Every valid IPv4 dotted quad
is an address, whatever the context: a version string such as 10.2.3.4 is one too (a tenant that
would rather keep those turns the `ip` kind off)."""

import ipaddress

from tokenmill.security.pii.kinds import Kind
from tokenmill.security.pii.recognizer import recognizer


def ipv6_valid(s: str) -> bool:
    try:
        return not ipaddress.IPv6Address(s).is_unspecified  # "::" is mostly code, not a host
    except ValueError:
        return False


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = rf"[\w.%+-]{{1,64}}@(?:{_LABEL}\.){{1,6}}[A-Za-z]{{2,24}}"
# up to 8 colons (bounds the shorter matches to try), ending in a group, an IPv4 or "::" (so a
# sentence's "." or a trailing ":" stays outside); only "::" may start with a colon
_HEX = "[0-9A-Fa-f]"
_IPV6 = (
    rf"(?={_HEX}{{1,4}}:|::)(?:{_HEX}{{0,4}}:){{1,8}}"
    rf"(?:\d{{1,3}}(?:\.\d{{1,3}}){{3}}|{_HEX}{{1,4}}|(?<=::))"
)

RECOGNIZERS = (
    # searched from each "@" (at most 64 characters into a match): prose is full of word
    # characters that could start one
    recognizer(
        Kind.EMAIL, r"\w.%+-", _EMAIL, r"\w%+@-", (6, 64 + 1 + 6 * 64 + 24), anchor="@", lead=64
    ),
    recognizer(Kind.IP, "0-9", rf"{_OCTET}(?:\.{_OCTET}){{3}}", "0-9", (7, 15)),
    recognizer(
        Kind.IP,
        "0-9A-Fa-f:",
        _IPV6,
        "0-9A-Fa-f:",
        (2, 8 * 5 + 15),
        ipv6_valid,
        shorter=True,
        anchor=":",
        lead=4,
    ),
)
