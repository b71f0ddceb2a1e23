"""Identifiers. Request ids are the ledger's idempotency keys, so they must never repeat.

A request id is time (ms) + a random per-process prefix + a per-process counter: unique without
a system call per request (os.urandom costs tens of microseconds on small VMs, measured).
"""

import itertools
import os
import secrets
import time

_PROCESS = secrets.token_hex(5)
_COUNTER = itertools.count()
_PID = os.getpid()


def new_request_id() -> str:
    global _PROCESS, _PID
    if os.getpid() != _PID:  # a forked worker must not share its parent's sequence
        _PROCESS, _PID = secrets.token_hex(5), os.getpid()
    return f"req_{int(time.time() * 1000):x}{_PROCESS}{next(_COUNTER):08x}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
