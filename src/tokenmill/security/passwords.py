"""Console passwords, stored as scrypt hashes (memory-hard: a stolen table is slow to crack).

Stored form: `scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>`, so the cost can be raised
later and old hashes still verify.
"""

import base64
import functools
import hashlib
import hmac
import secrets

# OWASP's scrypt floor is N=2^17 (128 MiB a hash); 2^15 (32 MiB, ~100 ms on a 2-core VM) keeps
# a burst of logins from exhausting a small control plane, and the stored form allows a raise.
N, R, P = 2**15, 8, 1
MIN_LENGTH, MAX_LENGTH = 12, 256
_SALT_BYTES = 16


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    memory = 2 * 128 * n * r + 2**20  # what scrypt needs, and a little headroom
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory, dklen=32)


def weakness(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if len(set(password)) < 4:
        return "a password needs more than a few distinct characters"
    return None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:  # a malformed hash never verifies
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@functools.cache
def decoy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs what a wrong
    password does and the answer's timing does not tell names apart."""
    return hash_password(secrets.token_urlsafe(16))
