"""Huawei Ascend NPUs from `npu-smi info`.

Each card prints two table rows: `| NPU Name | Health | Power(W) Temp(C) Hugepages |`, then
one row per chip, `| Chip | Bus-Id | AICore(%) Memory-Usage(MB) [HBM-Usage(MB)] |`. Training
cards (910) report their device memory as HBM; inference cards (310) only as Memory-Usage.
Each chip is one device, counted in print order as ASCEND_RT_VISIBLE_DEVICES counts them.
"""

import re

from tokenmill.fleet.detectors.tool import ToolDetector, mib_to_gb, row_pairs
from tokenmill.fleet.inventory import Device

_VERSION = re.compile(r"^\|\s*npu-smi\s+\S+\s+Version:\s*(\S+)", re.M)
_CARD = re.compile(
    r"^\|\s*(\d+)\s+(\S+)\s*\|\s*(\S+)\s*\|\s*([\d.]+|NA)\s+(\d+|NA)\s+\d+\s*/\s*\d+\s*\|\s*$"
)
_CHIP = re.compile(r"^\|\s*\d+\s*\|\s*[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d\s*\|(.*)\|")
_USAGE = re.compile(r"(\d+)\s*/\s*(\d+)")


def _number(text: str) -> float | None:
    return None if text == "NA" else float(text)


def parse_npu_smi_info(text: str) -> list[Device]:
    version = _VERSION.search(text)
    driver = version.group(1) if version else None
    devices: list[Device] = []
    for card, chip in row_pairs(text, _CARD, _CHIP):
        util, *_ = chip.group(1).split() or ["NA"]
        pairs = _USAGE.findall(chip.group(1))
        used, total = (float(x) for x in pairs[-1])  # HBM when printed, else Memory-Usage
        _, name, health, power, temp = card.groups()
        devices.append(
            Device(
                vendor="Huawei",
                resource="NPU",
                index=len(devices),
                model=f"Ascend {name}",
                memory_gb=mib_to_gb(total),
                memory_used_gb=mib_to_gb(used),
                driver=driver,
                healthy=health == "OK",
                health="ok" if health == "OK" else f"npu-smi health: {health}",
                utilisation=None if util == "NA" else float(util) / 100,
                power_w=_number(power),
                temperature_c=_number(temp),
            )
        )
    return devices


DETECTOR = ToolDetector("npu-smi", ("npu-smi", "info"), parse_npu_smi_info)
