"""Accelerator power from the vendors' command-line tools, where NVML does not reach.

One parser per tool, each tested against output recorded on real hardware (tests/data/power/):

    npu-smi   Huawei Ascend      `npu-smi info -l`, then `npu-smi info -t power -i <id>` per card
    amd-smi   AMD (ROCm 6 on)    `amd-smi metric --power`
    rocm-smi  AMD (older ROCm)   `rocm-smi --showpower`

Not yet supported, for want of recorded output to test a parser against: Cambricon `cnmon`,
Hygon `hy-smi` (derived from rocm-smi; `parse_rocm_smi` may fit it, unverified) and Intel Gaudi
`hl-smi`. To add a tool: a parser from its output to watts per device, a reader that runs it,
an entry in `TOOLS`, and a recorded output in tests/data/power/ with its source.

These tools report the power of the moment (or the firmware's short average), not energy
between readings: a sample is a spot reading.
"""

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from tokenmill.observe.power_meters import Unavailable

_TIMEOUT_S = 10
# "Rated Power Dissipation(W)" (Ascend 310) is a rating, not a reading: anchored out.
_NPU_POWER = re.compile(
    r"^\s*(?:NPU Real-time Power|Power Dissipation)\(W\)\s*:\s*([\d.]+)\s*$", re.M
)
_NPU_ID = re.compile(r"^\s*NPU ID\s*:\s*(\d+)\s*$", re.M)
# A secondary die (MI250) reads "N/A (Secondary die)": its primary die reports both.
_ROCM_POWER = re.compile(
    r"^GPU\[\d+\]\s*:\s*(?:Average|Current Socket) Graphics Package Power \(W\):\s*([\d.]+)\s*$",
    re.M,
)
# A partition or die without its own reading shows N/A and is left out.
_AMD_SOCKET_POWER = re.compile(r"^\s*SOCKET_POWER:\s*([\d.]+)\s*W\s*$", re.M)


def parse_npu_smi_ids(text: str) -> list[int]:
    """Card ids from `npu-smi info -l`."""
    return [int(x) for x in _NPU_ID.findall(text)]


def parse_npu_smi_power(text: str) -> list[float]:
    """Watts from `npu-smi info -t power -i <id>`."""
    return [float(x) for x in _NPU_POWER.findall(text)]


def parse_rocm_smi(text: str) -> list[float]:
    """Watts per GPU from `rocm-smi --showpower`."""
    return [float(x) for x in _ROCM_POWER.findall(text)]


def parse_amd_smi(text: str) -> list[float]:
    """Watts per GPU from `amd-smi metric --power` (or plain `amd-smi metric`)."""
    return [float(x) for x in _AMD_SOCKET_POWER.findall(text)]


def _run(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{command[0]}: {e}") from e
    if done.returncode != 0:
        raise Unavailable(
            f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[:200]}"
        )
    return done.stdout


def _npu_smi() -> list[float]:
    ids = parse_npu_smi_ids(_run(["npu-smi", "info", "-l"]))
    return [
        w
        for i in ids
        for w in parse_npu_smi_power(_run(["npu-smi", "info", "-t", "power", "-i", str(i)]))
    ]


def _amd_smi() -> list[float]:
    return parse_amd_smi(_run(["amd-smi", "metric", "--power"]))


def _rocm_smi() -> list[float]:
    return parse_rocm_smi(_run(["rocm-smi", "--showpower"]))


# Tool -> reader of watts per device. amd-smi and rocm-smi see the same GPUs: the first of
# them that works is used, never both.
TOOLS: dict[str, Callable[[], list[float]]] = {
    "npu-smi": _npu_smi,
    "amd-smi": _amd_smi,
    "rocm-smi": _rocm_smi,
}
_SAME_DEVICES = {"rocm-smi": "amd-smi"}


class ToolMeter:
    """A vendor tool as a meter; built only when a first reading succeeds."""

    def __init__(self, tool: str, read: Callable[[], list[float]]) -> None:
        self.tool, self._read = tool, read
        self._devices = len(self._readings())

    @property
    def basis(self) -> str:
        return f"{self.tool} {self._devices} device(s)"

    def _readings(self) -> list[float]:
        readings = self._read()
        if not readings:
            raise Unavailable(f"{self.tool} printed no power reading")
        return readings

    def watts(self) -> float:
        readings = self._readings()
        self._devices = len(readings)
        return sum(readings)


def tool_meters(
    tools: dict[str, Callable[[], list[float]]] = TOOLS,
) -> tuple[list[ToolMeter], dict[str, str]]:
    """The tools installed here that give a reading, and why each other one does not."""
    meters: list[ToolMeter] = []
    unavailable: dict[str, str] = {}
    for tool, read in tools.items():
        if _SAME_DEVICES.get(tool) in {m.tool for m in meters}:
            unavailable[tool] = f"not needed: {_SAME_DEVICES[tool]} reads the same devices"
        elif shutil.which(tool) is None:
            unavailable[tool] = f"{tool} is not installed"
        else:
            try:
                meters.append(ToolMeter(tool, read))
            except Unavailable as e:
                unavailable[tool] = str(e)
    return meters, unavailable
