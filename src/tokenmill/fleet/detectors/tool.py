"""Running a vendor tool: absent is not an error, present-but-failing says why, nothing hangs."""

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tokenmill.fleet.inventory import Device

TIMEOUT_S = 10.0  # a wedged driver can make an smi tool block forever


class DetectionError(RuntimeError):
    """The vendor's tool or library is there but did not tell us what the node holds."""


def run_tool(argv: Sequence[str], timeout_s: float | None = None) -> str | None:
    """The tool's standard output; None when it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    limit = TIMEOUT_S if timeout_s is None else timeout_s
    try:
        # Its own process group, so a timeout also ends whatever the tool started.
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as e:
        raise DetectionError(f"{argv[0]} could not run: {e}") from e
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DetectionError(f"{argv[0]} gave no answer within {limit:g} s") from None
    if proc.returncode != 0:
        said = (err or out).strip()[:200]
        raise DetectionError(f"{' '.join(argv)} exited {proc.returncode}: {said}")
    return out


@dataclass(frozen=True)
class ToolDetector:
    """A detector made of a command line and a parser of what it prints."""

    name: str
    argv: tuple[str, ...]
    parse: Callable[[str], list[Device]]
    # A tool that also reports another vendor's devices (rocm-smi on a Hygon node) may
    # rightly find none of its own.
    may_find_none: bool = False

    def detect(self) -> list[Device]:
        out = run_tool(self.argv)
        if out is None:
            return []
        devices = self.parse(out)
        if not devices and not self.may_find_none:
            raise DetectionError(f"{self.name} printed no device we could read")
        return devices


def mib_to_gb(mib: float) -> float:
    """Tools print MiB; the inventory counts GiB (1024 MiB), as the cards are sold."""
    return round(mib / 1024, 2)


def row_pairs(
    text: str, first: "re.Pattern[str]", second: "re.Pattern[str]", one_each: bool = False
) -> Iterator[tuple["re.Match[str]", "re.Match[str]"]]:
    """The smi tables print a device over two lines (card, then its state): each second-kind
    line with the first-kind line above it; lines before any card, and others, are skipped.
    `one_each`: a card has one state line (else several, as a card's chips)."""
    card: re.Match[str] | None = None
    for line in text.splitlines():
        if (found := first.match(line)) is not None:
            card = found
            continue
        state = second.match(line)
        if state is not None and card is not None:
            yield card, state
            if one_each:
                card = None
