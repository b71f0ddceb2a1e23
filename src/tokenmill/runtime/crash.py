"""Saying why an engine process died: how it ended, what to try, and its last log lines."""

import signal
from pathlib import Path

LOG_TAIL_LINES = 12


def exit_reason(code: int) -> str:
    """How a process ended, as a person reads it: the signal's name, or the exit code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def crash_hint(code: int) -> str:
    """What to try for an engine that died before it could serve."""
    if code == -signal.SIGILL:
        return (
            "the engine ran a CPU instruction this machine (or its hypervisor) does not "
            "allow: rebuild it here with `make engines` (portable, smoke-tested)"
        )
    if code in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT, -signal.SIGFPE):
        return (
            "the engine crashed while loading or at its first decode: rebuild it with "
            "`make engines` (a portable build, smoke-tested), and check the model file"
        )
    return "the engine refused to start: its log says why (an option or the model file?)"


def log_tail(path: Path, start: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines an engine wrote to its log since byte `start`."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def crash_report(code: int, log: Path, start: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """All of it in one message: how it died before it was ready, a hint, its last words."""
    tail = log_tail(log, start, lines)
    return f"engine {exit_reason(code)} before ready; {crash_hint(code)}. Log {log}:\n{tail}"
