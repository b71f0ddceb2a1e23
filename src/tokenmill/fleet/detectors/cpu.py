"""The host CPU from Linux's own files: /proc/cpuinfo, /proc/meminfo, /sys NUMA nodes."""

import os
import platform
import re
from pathlib import Path

from tokenmill.fleet.inventory import Cpu

# Instruction sets inference engines choose kernels by (llama.cpp, oneDNN, vLLM's CPU path);
# the full flag list is long and mostly irrelevant here.
RELEVANT_ISA = frozenset(
    {
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx_vnni",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        "asimd",
        "asimddp",
        "asimdhp",
        "sve",
        "sve2",
        "i8mm",
        "bf16",
    }
)
_FIELD = re.compile(r"^([^:\n]+?)\s*:\s*(.*)$", re.M)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, relevant ISA flags) from /proc/cpuinfo (x86 `flags`, Arm `Features`)."""
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(text):
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Model") or platform.machine() or "unknown"
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return model, frozenset(flags) & RELEVANT_ISA


def parse_meminfo_gb(text: str) -> float:
    """MemTotal from /proc/meminfo, in GiB."""
    found = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.M)
    if found is None:
        raise ValueError("/proc/meminfo has no MemTotal line")
    return round(int(found.group(1)) / 1024**2, 2)


def numa_nodes(sys_node: Path = Path("/sys/devices/system/node")) -> int:
    nodes = [p for p in sys_node.glob("node*") if p.name[4:].isdigit()]
    return max(1, len(nodes))


def usable_cores() -> int:
    """Logical CPUs this process may run on (a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def detect_cpu(
    proc: Path = Path("/proc"), sys_node: Path = Path("/sys/devices/system/node")
) -> Cpu:
    model, isa = parse_cpuinfo((proc / "cpuinfo").read_text())
    return Cpu(
        model=model,
        cores=usable_cores(),
        memory_gb=parse_meminfo_gb((proc / "meminfo").read_text()),
        isa=isa,
        numa_nodes=numa_nodes(sys_node),
    )
