"""Cambricon MLUs from `cnmon` (its default table).

Each card prints two rows: `| Card VF Name Firmware | Bus-Id | Util Ecc-Error |` and
`| Fan Temp Pwr:Usage/Cap | Memory-Usage | ... |`. The driver version is in the header
(`Driver v5.10.13`); cnmon 4.x printed it in each card's row instead (`On v4.20.11`).
cnmon's table has no health column.
"""

import re

from tokenmill.fleet.detectors.tool import ToolDetector, mib_to_gb, row_pairs
from tokenmill.fleet.inventory import Device

_HEADER_DRIVER = re.compile(r"Driver\s+v(\S+)\s*\|")
_CARD = re.compile(r"^\|\s*(\d+)\s+\S+\s+(\S+)\s+v\S+\s*\|([^|]*)\|\s*(\d+)%")
_STATE = re.compile(
    r"^\|\s*\S+\s+(\d+)C\s+(\d+)\s*W/\s*\d+\s*W\s*\|\s*(\d+)\s*MiB/\s*(\d+)\s*MiB\s*\|"
)
_ROW_DRIVER = re.compile(r"v(\d[\d.]*)")


def parse_cnmon(text: str) -> list[Device]:
    header = _HEADER_DRIVER.search(text)
    devices: list[Device] = []
    for card, state in row_pairs(text, _CARD, _STATE, one_each=True):
        index, name, middle, util = card.groups()
        row_driver = _ROW_DRIVER.search(middle)
        temp, power, used, total = (float(x) for x in state.groups())
        devices.append(
            Device(
                vendor="Cambricon",
                resource="MLU",
                index=int(index),
                model=name,
                memory_gb=mib_to_gb(total),
                memory_used_gb=mib_to_gb(used),
                driver=header.group(1) if header else row_driver.group(1) if row_driver else None,
                utilisation=float(util) / 100,
                power_w=power,
                temperature_c=temp,
            )
        )
    return devices


DETECTOR = ToolDetector("cnmon", ("cnmon",), parse_cnmon)
