"""Intel Gaudi HPUs from `hl-smi` (its default table, laid out like nvidia-smi's).

Each card prints `| AIP Name Persistence-M | Bus-Id Disp.A | ... |` then
`| Fan Temp Perf Pwr:Usage/Cap | Memory-Usage | AIP-Util Compute M. |`; the driver version
is in the header. HL-225 is Gaudi 2, HL-325/HL-325L Gaudi 3.
"""

import re

from tokenmill.fleet.detectors.tool import ToolDetector, mib_to_gb, row_pairs
from tokenmill.fleet.inventory import Device

_DRIVER = re.compile(r"^\|\s*Driver Version:\s*(\S+)", re.M)
_CARD = re.compile(r"^\|\s*(\d+)\s+(HL-\S+)\s+.*\|\s*[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:")
_STATE = re.compile(
    r"^\|\s*\S+\s+(\d+)C\s+\S+\s+(\d+)W\s*/\s*\d+W\s*\|"
    r"\s*(\d+)Mi[Bb]\s*/\s*(\d+)Mi[Bb]\s*\|\s*(\d+)%"
)


def parse_hl_smi(text: str) -> list[Device]:
    driver = _DRIVER.search(text)
    devices: list[Device] = []
    for card, state in row_pairs(text, _CARD, _STATE, one_each=True):
        temp, power, used, total, util = (float(x) for x in state.groups())
        devices.append(
            Device(
                vendor="Intel",
                resource="HPU",
                index=int(card.group(1)),
                model=card.group(2),
                memory_gb=mib_to_gb(total),
                memory_used_gb=mib_to_gb(used),
                driver=driver.group(1) if driver else None,
                utilisation=util / 100,
                power_w=power,
                temperature_c=temp,
            )
        )
    return devices


DETECTOR = ToolDetector("hl-smi", ("hl-smi",), parse_hl_smi)
