"""NVIDIA GPUs through NVML (`pynvml`, from the optional `gpu` extra: nvidia-ml-py).

No NVML library, or no NVIDIA driver for it to load, means no NVIDIA device here, not an
error. Readings a GPU does not support (power on some boards) are left unknown.
"""

import importlib
from dataclasses import dataclass
from typing import Any

from tokenmill.fleet.detectors.tool import DetectionError, mib_to_gb
from tokenmill.fleet.inventory import Device

_MIB = 1024**2


def device_from_nvml(
    index: int,
    name: str,
    memory_total_bytes: int,
    memory_used_bytes: int | None,
    driver: str | None,
    gpu_util_percent: float | None,
    power_mw: float | None,
    temperature_c: float | None,
) -> Device:
    """One GPU from NVML's own units (bytes, milliwatts, percent)."""
    return Device(
        vendor="NVIDIA",
        resource="GPU",
        index=index,
        model=name,
        memory_gb=mib_to_gb(memory_total_bytes / _MIB),
        memory_used_gb=None if memory_used_bytes is None else mib_to_gb(memory_used_bytes / _MIB),
        driver=driver,
        utilisation=None if gpu_util_percent is None else gpu_util_percent / 100,
        power_w=None if power_mw is None else power_mw / 1000,
        temperature_c=temperature_c,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # old pynvml gave bytes


@dataclass(frozen=True)
class NvmlDetector:
    name: str = "nvml"

    def detect(self) -> list[Device]:
        try:
            nvml: Any = importlib.import_module("pynvml")
        except ImportError:
            return []
        try:
            nvml.nvmlInit()
        except nvml.NVMLError_LibraryNotFound:
            return []  # the library without a driver: no NVIDIA GPU on this machine
        except nvml.NVMLError as e:
            raise DetectionError(f"NVML: {e}") from e
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            return [self._device(nvml, i, driver) for i in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as e:
            raise DetectionError(f"NVML: {e}") from e
        finally:
            nvml.nvmlShutdown()

    @staticmethod
    def _device(nvml: Any, index: int, driver: str) -> Device:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)

        def optional(read: Any, *args: Any) -> Any:
            try:
                return read(handle, *args)
            except nvml.NVMLError_NotSupported:
                return None

        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        util = optional(nvml.nvmlDeviceGetUtilizationRates)
        return device_from_nvml(
            index,
            _text(nvml.nvmlDeviceGetName(handle)),
            int(memory.total),
            int(memory.used),
            driver,
            None if util is None else float(util.gpu),
            optional(nvml.nvmlDeviceGetPowerUsage),
            optional(nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU),
        )


DETECTOR = NvmlDetector()
