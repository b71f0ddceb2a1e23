"""What the machine TokenMill runs on has: its CPU model, logical CPUs and memory, read from
the operating system (the default node cost is priced from them, default_node.py)."""

import os
import platform
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

_GIB = 2**30
CGROUP_MEMORY = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
_MODEL_KEYS = ("model name", "Model", "Hardware", "cpu model")  # x86, then ARM and others


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_model: str | None
    logical_cpus: int
    memory_bytes: int | None

    @property
    def memory_gib(self) -> Decimal | None:
        return None if self.memory_bytes is None else Decimal(self.memory_bytes) / _GIB

    def describe(self) -> str:
        gib = self.memory_gib
        memory = "memory unknown" if gib is None else f"{gib:.2f} GiB"
        model = self.cpu_model or "CPU model unknown"
        return f"{model}, {self.logical_cpus} logical CPUs, {memory}"

    def as_dict(self) -> dict[str, object]:
        gib = self.memory_gib
        return {
            "cpu_model": self.cpu_model,
            "logical_cpus": self.logical_cpus,
            "memory_gib": None if gib is None else str(gib.quantize(Decimal("0.01"))),
        }


def cpu_model(cpuinfo: str) -> str | None:
    """The first model line of /proc/cpuinfo's text, by the key each architecture uses."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip(), value.strip())
    return next((fields[k] for k in _MODEL_KEYS if k in fields), None)


def _logical_cpus() -> int:
    # The CPUs this process may run on: in a container pinned to some of the host's CPUs,
    # those are the machine it has.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cgroup_limit(files: tuple[Path, ...]) -> int | None:
    """A container's memory limit (cgroup v2, then v1); None where none is set."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None  # v2 writes "max" for no limit
    return None


def _memory_bytes(cgroup: tuple[Path, ...]) -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None
    if pages <= 0 or size <= 0:
        return None
    limit = _cgroup_limit(cgroup)  # v1 says "no limit" with a huge number: min() keeps RAM
    return pages * size if limit is None else min(pages * size, limit)


def discover(
    cpuinfo: Path = Path("/proc/cpuinfo"), cgroup: tuple[Path, ...] = CGROUP_MEMORY
) -> Machine:
    """This machine, as this process sees it: in a container, the CPUs and memory it is given."""
    try:
        model = cpu_model(cpuinfo.read_text(errors="replace"))
    except OSError:  # not Linux
        model = None
    return Machine(model or platform.processor() or None, _logical_cpus(), _memory_bytes(cgroup))
