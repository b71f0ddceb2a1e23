"""Hygon DCUs from `hy-smi --json`, or from the rocm-smi that Hygon's DTK ships.

hy-smi derives from rocm-smi and prints the same `cardN` objects with Hygon's keys
(`Card Series`, `DCU use (%)` or `HCU use (%)` on newer drivers, `vram Total Memory (MiB)`,
`Temperature (Sensor mem) (C)`, `Average Graphics Package Power (W)`).
"""

from dataclasses import dataclass

from tokenmill.fleet.detectors import amd
from tokenmill.fleet.detectors.tool import DetectionError, mib_to_gb, run_tool
from tokenmill.fleet.inventory import Device


def parse_hy_smi(text: str) -> list[Device]:
    devices = []
    for index, fields in amd.cards(text):
        total = amd.number(fields, "vram Total Memory (MiB)")
        if not amd.is_hygon(fields) or total is None:
            continue
        used = amd.number(fields, "vram Total Used Memory (MiB)")
        util = amd.number(fields, "DCU use (%)", "HCU use (%)")
        devices.append(
            Device(
                vendor="Hygon",
                resource="DCU",
                index=index,
                model=fields.get("Card Series") or "Hygon DCU",
                memory_gb=mib_to_gb(total),
                memory_used_gb=None if used is None else mib_to_gb(used),
                utilisation=None if util is None else util / 100,
                power_w=amd.number(fields, "Average Graphics Package Power (W)"),
                temperature_c=amd.number(
                    fields, "Temperature (Sensor junction) (C)", "Temperature (Sensor mem) (C)"
                ),
            )
        )
    return devices


@dataclass(frozen=True)
class HygonDetector:
    """hy-smi where installed, else rocm-smi (which then shows the DCUs too)."""

    name: str = "hy-smi"

    def detect(self) -> list[Device]:
        for tool in ("hy-smi", "rocm-smi"):
            out = run_tool((tool, *amd.ARGS))
            if out is None:
                continue
            devices = parse_hy_smi(out)
            if tool == "hy-smi" and not devices:
                raise DetectionError("hy-smi printed no DCU we could read")
            return devices
        return []


DETECTOR = HygonDetector()
