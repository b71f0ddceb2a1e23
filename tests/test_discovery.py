"""Accelerator parsers against output recorded on real hardware (tests/data/fleet/SOURCES.md
says where each file came from), and the catalog match of what they report."""

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tokenmill.fleet.detectors import amd, ascend, cambricon, gaudi, hygon, nvidia
from tokenmill.fleet.discovery import catalog_id
from tokenmill.fleet.inventory import Device

DATA = Path(__file__).parent / "data" / "fleet"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_npu_smi_recorded_on_8x_ascend_910b3() -> None:
    devices = ascend.parse_npu_smi_info(_read("npu_smi_info_910b3_x8.txt"))
    assert [d.index for d in devices] == list(range(8))
    first = devices[0]
    assert (first.vendor, first.resource, first.model) == ("Huawei", "NPU", "Ascend 910B3")
    assert first.memory_gb == 64.0  # HBM 65536 MB, not the 0 MB "Memory-Usage" column
    assert first.memory_used_gb == pytest.approx(3338 / 1024, abs=0.01)
    assert (first.power_w, first.temperature_c, first.utilisation) == (102.8, 55.0, 0.0)
    assert first.driver == "23.0.7"
    assert all(d.healthy for d in devices)
    assert [d.power_w for d in devices][-1] == 105.1
    assert catalog_id(first.model) == "ascend-910b"


def test_npu_smi_recorded_on_atlas_800t_9010_reports_its_warnings() -> None:
    devices = ascend.parse_npu_smi_info(_read("npu_smi_info_atlas800t_9010_two_warnings.txt"))
    assert len(devices) == 8
    assert [d.index for d in devices if not d.healthy] == [3, 7]
    assert devices[3].health == "npu-smi health: Warning"
    assert devices[0].memory_gb == 32.0 and devices[0].memory_used_gb == 0.0
    assert devices[0].driver == "24.1.RC2"
    # GPUStack's recording hides the chip name ("xxx"): a model the catalog can't place.
    assert catalog_id(devices[0].model) is None


def test_cnmon_recorded_on_2x_mlu370_x8() -> None:
    devices = cambricon.parse_cnmon(_read("cnmon_mlu370_x8.txt"))
    assert [(d.index, d.model) for d in devices] == [(0, "MLU370-X8"), (1, "MLU370-X8")]
    d = devices[1]
    assert (d.vendor, d.resource, d.driver) == ("Cambricon", "MLU", "5.10.13")
    assert d.memory_gb == pytest.approx(23374 / 1024, abs=0.01)
    assert (d.memory_used_gb, d.power_w, d.temperature_c, d.utilisation) == (0.0, 106.0, 39.0, 0.0)
    assert catalog_id(d.model) == "mlu370-x8"


def test_hl_smi_recorded_on_8x_gaudi2() -> None:
    devices = gaudi.parse_hl_smi(_read("hl_smi_gaudi2_hl225_x8.txt"))
    assert [d.index for d in devices] == list(range(8))
    assert {(d.vendor, d.resource, d.model, d.memory_gb) for d in devices} == {
        ("Intel", "HPU", "HL-225", 96.0)
    }
    assert devices[0].driver == "1.19.1-6f47ddd"
    assert devices[3].memory_used_gb == pytest.approx(96565 / 1024, abs=0.01)
    assert (devices[7].power_w, devices[7].temperature_c) == (100.0, 30.0)
    assert catalog_id("HL-225") is None  # Gaudi 2: the catalog lists Gaudi 3 only


def test_rocm_smi_recorded_on_radeon_rx_7800_xt() -> None:
    devices = amd.parse_rocm_smi(_read("rocm_smi_radeon_rx7800xt.json"))
    assert len(devices) == 1
    d = devices[0]
    assert (d.vendor, d.resource, d.index) == ("AMD", "GPU", 0)
    assert d.model == "Navi 32 [Radeon RX 7700 XT / 7800 XT]"
    assert d.memory_gb == pytest.approx(17163091968 / 1024**3, abs=0.01)
    assert d.memory_used_gb == pytest.approx(11615076352 / 1024**3, abs=0.01)
    assert (d.utilisation, d.power_w, d.temperature_c) == (1.0, 53.0, 51.0)
    assert catalog_id(d.model) is None


def test_hygon_dcu_recorded_with_dtk_rocm_smi() -> None:
    text = _read("rocm_smi_hygon_dcu_0x6210.json")
    devices = hygon.parse_hy_smi(text)
    assert len(devices) == 1
    d = devices[0]
    assert (d.vendor, d.resource, d.index, d.model) == ("Hygon", "DCU", 0, "DCU xxxx")
    assert d.memory_gb == pytest.approx(65520 / 1024, abs=0.01)
    assert (d.memory_used_gb, d.utilisation, d.power_w, d.temperature_c) == (0.0, 0.0, 80.0, 39.0)
    assert amd.parse_rocm_smi(text) == []  # the AMD detector leaves Hygon's cards alone
    assert hygon.parse_hy_smi(_read("rocm_smi_radeon_rx7800xt.json")) == []  # and vice versa


def test_catalog_matches_names_as_the_tools_report_them() -> None:
    # Names other tools print; the matching rule (fleet/catalog.find) is the catalog's own.
    assert catalog_id("NVIDIA H100 80GB HBM3") == "h100"
    assert catalog_id("Ascend910B2") == "ascend-910b"
    assert catalog_id("Ascend 910B4") == "ascend-910b4"
    assert catalog_id("K100_AI") == "k100-ai"
    assert catalog_id("AMD Instinct MI300X") == "mi300x"
    assert catalog_id("Tesla P100-PCIE-12GB") is None


def _device_from_nvidia_smi_xml() -> Device:
    """nvidia-smi -q -x prints NVML's readings in display units: back to NVML's own, then
    through the same mapping the NVML detector uses."""
    root = ET.parse(DATA / "nvidia_smi_q_x_tesla_p100_excerpt.xml").getroot()
    gpu = root.find("gpu")
    assert gpu is not None

    def num(path: str) -> float:
        return float(gpu.findtext(path, "").split()[0])

    return nvidia.device_from_nvml(
        index=0,
        name=gpu.findtext("product_name", ""),
        memory_total_bytes=int(num("fb_memory_usage/total")) * 1024**2,
        memory_used_bytes=int(num("fb_memory_usage/used")) * 1024**2,
        driver=root.findtext("driver_version"),
        gpu_util_percent=num("utilization/gpu_util"),
        power_mw=num("power_readings/power_draw") * 1000,
        temperature_c=num("temperature/gpu_temp"),
    )


def test_nvml_values_recorded_by_nvidia_smi_on_a_tesla_p100() -> None:
    d = _device_from_nvidia_smi_xml()
    assert (d.vendor, d.resource, d.model) == ("NVIDIA", "GPU", "Tesla P100-PCIE-12GB")
    assert d.memory_gb == pytest.approx(11567 / 1024, abs=0.01)
    assert d.memory_used_gb == pytest.approx(11400 / 1024, abs=0.01)
    assert d.utilisation == pytest.approx(0.334)
    assert d.power_w == pytest.approx(24.84)
    assert (d.temperature_c, d.driver) == (31.0, "375.66")


@pytest.mark.skipif(
    importlib.util.find_spec("pynvml") is None,
    reason="NVML path needs nvidia-ml-py (pip install 'tokenmill[gpu]') and an NVIDIA GPU",
)
def test_nvml_on_this_machine() -> None:
    devices = nvidia.DETECTOR.detect()
    if not devices:
        pytest.skip("NVML is installed but this machine has no NVIDIA GPU")
    for d in devices:
        assert d.model and d.memory_gb > 0 and d.driver
        assert d.memory_used_gb is not None and 0 <= d.memory_used_gb <= d.memory_gb
