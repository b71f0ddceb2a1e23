"""Power meters read on this machine: RAPL for CPU packages, NVML for NVIDIA GPUs, and the
machine's CPU utilisation for estimates where nothing is measured.

A meter is built where it works and raises `Unavailable` (its message says why) where it does
not; `watts()` then gives the average draw since the previous call. Vendor tools for other
accelerators are in `power_tools`.
"""

import importlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

POWERCAP = Path("/sys/class/powercap")
PROC_STAT = Path("/proc/stat")
# Top-level zones only: subzones (intel-rapl:0:0, core/uncore) are inside their package's count.
# AMD CPUs appear as intel-rapl or amd-rapl depending on the kernel; intel-rapl-mmio repeats
# the package through another interface and must not be added again.
_TOP_ZONE = re.compile(r"(intel|amd)-rapl:\d+")

Clock = Callable[[], float]


class Unavailable(Exception):
    """A meter that cannot be read here; the message says why."""


class Meter(Protocol):
    @property
    def basis(self) -> str:
        """What is measured, e.g. "RAPL 2 CPU packages"."""
        ...

    def watts(self) -> float:
        """Average draw since the previous call; raises Unavailable when it cannot be read."""
        ...


def energy_delta_uj(before: int, after: int, range_uj: int) -> int:
    """Energy between two readings of a counter that wraps to 0 after `range_uj`. A counter
    that wraps more than once between readings cannot be told apart: read more often than
    range / power (262 kJ at 200 W: every 20 minutes)."""
    return after - before if after >= before else after + range_uj - before


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text())
    except PermissionError as e:
        raise Unavailable(
            f"{path} is readable by root only (kernels since 5.10); "
            "run as root or grant read access to it"
        ) from e
    except (OSError, ValueError) as e:
        raise Unavailable(f"cannot read {path}: {e}") from e


class RaplMeter:
    """CPU package energy from the kernel's powercap interface. DRAM and psys domains are not
    counted: psys overlaps the packages, and DRAM is absent on most machines."""

    def __init__(self, root: Path = POWERCAP, clock: Clock = time.monotonic) -> None:
        if not root.is_dir():
            raise Unavailable(f"no {root}: no powercap driver here (virtual machine?)")
        zones = sorted(
            p
            for p in root.iterdir()
            if _TOP_ZONE.fullmatch(p.name) and _zone_name(p).startswith("package")
        )
        if not zones:
            raise Unavailable(f"no RAPL package zones under {root}")
        self._clock = clock
        self._paths = [z / "energy_uj" for z in zones]
        self._ranges = [_read_int(z / "max_energy_range_uj") for z in zones]
        self._last = self._read()
        self._at = clock()

    @property
    def basis(self) -> str:
        return f"RAPL {len(self._paths)} CPU package(s)"

    def _read(self) -> list[int]:
        return [_read_int(path) for path in self._paths]

    def watts(self) -> float:
        now, readings = self._clock(), self._read()
        elapsed = now - self._at
        if elapsed <= 0:
            raise Unavailable("RAPL read twice at the same instant")
        joules = sum(
            energy_delta_uj(before, after, range_uj) / 1e6
            for before, after, range_uj in zip(self._last, readings, self._ranges, strict=True)
        )
        self._last, self._at = readings, now
        return joules / elapsed


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


class NvmlMeter:
    """NVIDIA GPUs through NVML (the optional `gpu` extra: nvidia-ml-py). The energy counter
    (Volta and later) gives the exact average between readings; older GPUs, and the first
    reading after a driver reload, fall back to the instantaneous board power."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        try:
            self._nvml: Any = importlib.import_module("pynvml")
        except ImportError as e:
            raise Unavailable("pynvml is not installed (pip install 'tokenmill[gpu]')") from e
        try:
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._last = [self._energy_mj(h) for h in self._handles]
        except self._nvml.NVMLError as e:
            raise Unavailable(f"NVML: {e}") from e
        if not self._handles:
            raise Unavailable("NVML sees no GPU")
        self._clock = clock
        self._at = clock()

    @property
    def basis(self) -> str:
        return f"NVML {len(self._handles)} GPU(s)"

    def _energy_mj(self, handle: object) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except self._nvml.NVMLError_NotSupported:
            return None

    def watts(self) -> float:
        try:
            now, energies = self._clock(), [self._energy_mj(h) for h in self._handles]
            elapsed, total = now - self._at, 0.0
            for handle, before, after in zip(self._handles, self._last, energies, strict=True):
                if before is not None and after is not None and after >= before and elapsed > 0:
                    total += (after - before) / 1e3 / elapsed
                else:
                    total += self._nvml.nvmlDeviceGetPowerUsage(handle) / 1e3
        except self._nvml.NVMLError as e:
            raise Unavailable(f"NVML: {e}") from e
        self._last, self._at = energies, now
        return total


class CpuUtilisation:
    """Busy share of all the machine's CPUs (0..1) since the previous call, from /proc/stat;
    the first call gives the share since boot, a call with no time since the previous value."""

    def __init__(self, stat: Path = PROC_STAT) -> None:
        self._stat = stat
        self._last, self._value = (0, 0), 0.0

    def _times(self) -> tuple[int, int]:
        """(total, idle + iowait) jiffies. guest and guest_nice are already counted in user and
        nice, so only the first eight fields make the total."""
        fields = self._stat.read_text().split("\n", 1)[0].split()
        if not fields or fields[0] != "cpu":
            raise ValueError(f"{self._stat}: no aggregate cpu line")
        ticks = [int(x) for x in fields[1:9]]
        return sum(ticks), ticks[3] + (ticks[4] if len(ticks) > 4 else 0)

    def __call__(self) -> float:
        total, idle = self._times()
        d_total, d_idle = total - self._last[0], idle - self._last[1]
        if d_total > 0:
            self._last = (total, idle)
            self._value = min(1.0, max(0.0, (d_total - d_idle) / d_total))
        return self._value
