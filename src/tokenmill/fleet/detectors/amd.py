"""AMD GPUs from `rocm-smi --json`.

rocm-smi prints one object per card (`card0`, ...); Hygon's DTK ships a rocm-smi of its own
that prints DCU cards with other keys (`DCU use (%)`, `vram Total Memory (MiB)`): those are
left to the Hygon detector, so a node never counts a card twice. amd-smi, rocm-smi's
successor, is not read yet: we hold no recorded amd-smi output covering memory in use,
utilisation and power together to test a parser against.
"""

import json
from typing import Any

from tokenmill.fleet.detectors.tool import ToolDetector
from tokenmill.fleet.inventory import Device

# The card's identity, memory and telemetry in one call (GPUStack reads the same set).
ARGS = (
    "-i",
    "--showmeminfo",
    "vram",
    "--showpower",
    "--showserial",
    "--showuse",
    "--showtemp",
    "--showproductname",
    "--showuniqueid",
    "--json",
)
_GIB = 1024**3


def cards(text: str) -> list[tuple[int, dict[str, str]]]:
    """(index, fields) per `cardN` object, in index order; other keys (`system`) skipped."""
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("rocm-smi --json did not print an object")
    found = [
        (int(key.removeprefix("card")), fields)
        for key, fields in data.items()
        if key.startswith("card") and key[4:].isdigit() and isinstance(fields, dict)
    ]
    return sorted(found, key=lambda c: c[0])


def number(fields: dict[str, str], *keys: str) -> float | None:
    """The first of `keys` holding a number ("N/A" and absent are None)."""
    for key in keys:
        try:
            return float(fields[key])
        except (KeyError, ValueError):
            continue
    return None


def is_hygon(fields: dict[str, str]) -> bool:
    return any("DCU" in k or "HCU" in k for k in fields)


def parse_rocm_smi(text: str) -> list[Device]:
    devices = []
    for index, fields in cards(text):
        total = number(fields, "VRAM Total Memory (B)")
        if is_hygon(fields) or total is None:
            continue
        used = number(fields, "VRAM Total Used Memory (B)")
        util = number(fields, "GPU use (%)")
        devices.append(
            Device(
                vendor="AMD",
                resource="GPU",
                index=index,
                model=fields.get("Card Series") or fields.get("Device Name") or "AMD GPU",
                memory_gb=round(total / _GIB, 2),
                memory_used_gb=None if used is None else round(used / _GIB, 2),
                utilisation=None if util is None else util / 100,
                power_w=number(
                    fields,
                    "Average Graphics Package Power (W)",
                    "Current Socket Graphics Package Power (W)",
                ),
                temperature_c=number(
                    fields, "Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)"
                ),
            )
        )
    return devices


DETECTOR = ToolDetector("rocm-smi", ("rocm-smi", *ARGS), parse_rocm_smi, may_find_none=True)
