"""Power telemetry: meters, the measured-else-estimated choice, and the power log.

This VM has no RAPL (/sys/class/powercap), no GPU and none of the vendors' tools, so those are
tested against recorded layouts and outputs (named `recorded` below): a sysfs tree built as the
kernel's powercap documentation lays it out, and tool output recorded on real hardware
(tests/data/power/SOURCES.md). /proc/stat and the SQLite store are the real ones.
"""

import asyncio
import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tokenmill.core.power import Power, measured_power
from tokenmill.observe.power import PowerLog, PowerSource
from tokenmill.observe.power_meters import (
    CpuUtilisation,
    NvmlMeter,
    RaplMeter,
    Unavailable,
    energy_delta_uj,
)
from tokenmill.observe.power_tools import (
    TOOLS,
    ToolMeter,
    parse_amd_smi,
    parse_npu_smi_ids,
    parse_npu_smi_power,
    parse_rocm_smi,
    tool_meters,
)
from tokenmill.store.tables import PowerSample

DATA = Path(__file__).parent / "data" / "power"
RANGE_UJ = 262_143_328_850  # max_energy_range_uj of a server package


# --- RAPL against a recorded powercap layout ------------------------------------------------


def _zone(path: Path, name: str, energy_uj: int) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{RANGE_UJ}\n")
    (path / "enabled").write_text("1\n")
    return path


def _rapl_tree(base: Path, packages: int = 2, prefix: str = "intel-rapl") -> Path:
    """/sys/devices/virtual/powercap/<prefix>/<prefix>:N[/<prefix>:N:M], each zone also linked
    from /sys/class/powercap, as on a two-socket server; plus intel-rapl-mmio:0, the same
    package-0 through MMIO, as recent Intel kernels add."""
    devices = base / "devices" / "virtual" / "powercap" / prefix
    devices.mkdir(parents=True)
    (devices / "enabled").write_text("1\n")
    classdir = base / "class" / "powercap"
    classdir.mkdir(parents=True)
    (classdir / prefix).symlink_to(devices)
    for n in range(packages):
        zone = _zone(devices / f"{prefix}:{n}", f"package-{n}", 1_000_000)
        (classdir / zone.name).symlink_to(zone)
        for m, sub in enumerate(("core", "uncore")):
            subzone = _zone(zone / f"{prefix}:{n}:{m}", sub, 500_000)
            (classdir / subzone.name).symlink_to(subzone)
    mmio = _zone(base / "devices" / "virtual" / "powercap" / "mmio:0", "package-0", 1_000_000)
    (classdir / "intel-rapl-mmio:0").symlink_to(mmio)
    return classdir


def _set_energy(classdir: Path, zone: str, energy_uj: int) -> None:
    (classdir / zone / "energy_uj").write_text(f"{energy_uj}\n")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("prefix", ["intel-rapl", "amd-rapl"])
def test_rapl_recorded_tree_sums_packages_once(tmp_path: Path, prefix: str) -> None:
    classdir, clock = _rapl_tree(tmp_path, prefix=prefix), _Clock()
    meter = RaplMeter(classdir, clock)
    assert meter.basis == "RAPL 2 CPU package(s)"
    _set_energy(classdir, f"{prefix}:0", 1_000_000 + 100_000_000)  # +100 J
    _set_energy(classdir, f"{prefix}:1", 1_000_000 + 60_000_000)  # +60 J
    # Subzones and the MMIO view rise too; they are inside the packages' count.
    _set_energy(classdir, f"{prefix}:0:0", 90_000_000)
    _set_energy(classdir, f"{prefix}:1:1", 50_000_000)
    _set_energy(classdir, "intel-rapl-mmio:0", 101_000_000)
    clock.now += 2.0
    assert meter.watts() == pytest.approx(80.0)  # 160 J in 2 s
    clock.now += 1.0  # no energy since: no power
    assert meter.watts() == 0.0


def test_rapl_recorded_tree_counter_wraps(tmp_path: Path) -> None:
    classdir, clock = _rapl_tree(tmp_path, packages=1), _Clock()
    _set_energy(classdir, "intel-rapl:0", RANGE_UJ - 5_000_000)
    meter = RaplMeter(classdir, clock)
    _set_energy(classdir, "intel-rapl:0", 15_000_000)  # wrapped: 5 J to the top, 15 J after
    clock.now += 1.0
    assert meter.watts() == pytest.approx(20.0)
    assert energy_delta_uj(10, 30, RANGE_UJ) == 20
    assert energy_delta_uj(RANGE_UJ - 1, 1, RANGE_UJ) == 2


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Root reads any file: drop to nobody for the block (the effective id only, restored)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_rapl_recorded_tree_root_only_energy_is_not_available() -> None:
    # Since Linux 5.10 energy_uj is 0400 root. A world-readable directory, so that `nobody`
    # gets as far as the counter (pytest's tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="rapl-"))
    try:
        base.chmod(0o755)
        classdir = _rapl_tree(base, packages=1)
        counter = classdir / "intel-rapl:0" / "energy_uj"
        counter.chmod(stat.S_IRUSR if os.geteuid() == 0 else 0)
        with _unprivileged(), pytest.raises(Unavailable, match="readable by root only"):
            RaplMeter(classdir)
    finally:
        shutil.rmtree(base)


def test_rapl_missing_powercap_says_why(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no powercap driver"):
        RaplMeter(tmp_path / "powercap")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Unavailable, match="no RAPL package zones"):
        RaplMeter(tmp_path / "empty")


def test_rapl_on_this_machine_reads_or_says_why() -> None:
    try:
        meter = RaplMeter()
    except Unavailable as e:
        assert str(e)  # this VM: no /sys/class/powercap
        return
    assert meter.watts() >= 0


# --- NVML -------------------------------------------------------------------------------------


def test_nvml_reads_every_gpu() -> None:
    pytest.importorskip("pynvml", reason="nvidia-ml-py (the gpu extra) is not installed")
    try:
        meter = NvmlMeter()
    except Unavailable as e:
        pytest.skip(f"no NVIDIA GPU and driver here: {e}")
    assert meter.basis.startswith("NVML ")
    assert meter.watts() > 0  # a powered GPU never draws nothing


def test_nvml_without_library_says_why() -> None:
    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("pynvml is installed: see test_nvml_reads_every_gpu")
    with pytest.raises(Unavailable, match=r"tokenmill\[gpu\]"):
        NvmlMeter()


# --- vendor tools, recorded output ------------------------------------------------------------


def _recorded(name: str) -> str:
    return (DATA / name).read_text()


def test_npu_smi_recorded_output() -> None:
    assert parse_npu_smi_ids(_recorded("npu_smi_info_l.txt")) == list(range(8))
    assert parse_npu_smi_power(_recorded("npu_smi_power.txt")) == [103.5]
    assert parse_npu_smi_power("\tRated Power Dissipation(W)     : 75.0\n") == []  # a rating


def test_rocm_smi_recorded_output_skips_secondary_dies() -> None:
    # MI250: each primary die reports its package, the secondary die N/A.
    assert parse_rocm_smi(_recorded("rocm_smi_showpower_mi250.txt")) == [237, 230, 220, 235]
    assert parse_rocm_smi(_recorded("rocm_smi_showpower_rocm6.txt")) == [4.0, 3.0]


def test_amd_smi_recorded_output() -> None:
    assert parse_amd_smi(_recorded("amd_smi_metric.txt")) == [20.0]


def test_tool_meter_with_no_reading_is_not_available() -> None:
    meter = ToolMeter("rocm-smi", lambda: parse_rocm_smi(_recorded("rocm_smi_showpower_mi250.txt")))
    assert (meter.basis, meter.watts()) == ("rocm-smi 4 device(s)", 922.0)
    with pytest.raises(Unavailable, match="no power reading"):
        ToolMeter("rocm-smi", lambda: parse_rocm_smi("GPU[0] : N/A (Secondary die)"))


def _replay(bin_dir: Path, tool: str, script: str) -> None:
    path = bin_dir / tool
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_tools_replaying_recorded_output_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command lines run, against stand-ins on PATH that print recorded output."""
    bins = tmp_path / "bin"
    bins.mkdir()
    _replay(
        bins,
        "npu-smi",
        f'if [ "$2" = "-l" ]; then cat {DATA}/npu_smi_info_l.txt; '
        f"else cat {DATA}/npu_smi_power.txt; fi",
    )
    _replay(bins, "amd-smi", f"cat {DATA}/amd_smi_metric.txt")
    _replay(bins, "rocm-smi", f"cat {DATA}/rocm_smi_showpower_mi250.txt")
    monkeypatch.setenv("PATH", f"{bins}{os.pathsep}{os.environ['PATH']}")
    meters, unavailable = tool_meters(TOOLS)
    assert {m.tool: m.watts() for m in meters} == {"npu-smi": 8 * 103.5, "amd-smi": 20.0}
    assert "reads the same devices" in unavailable["rocm-smi"]  # never both AMD tools
    _replay(bins, "amd-smi", "echo 'amdsmi: no GPU' >&2; exit 2")
    meters, unavailable = tool_meters(TOOLS)
    assert "exited 2: amdsmi: no GPU" in unavailable["amd-smi"]
    assert [m.basis for m in meters] == ["npu-smi 8 device(s)", "rocm-smi 4 device(s)"]


def test_tools_absent_here_say_so() -> None:
    meters, unavailable = tool_meters(TOOLS)
    assert {m.tool for m in meters} | set(unavailable) == set(TOOLS)


# --- CPU utilisation --------------------------------------------------------------------------


def test_cpu_utilisation_from_recorded_proc_stat(tmp_path: Path) -> None:
    stat_file = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat_file.write_text("cpu  100 0 50 800 50 0 0 0 40 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n")
    util = CpuUtilisation(stat_file)
    assert util() == pytest.approx(150 / 1000)  # since boot
    stat_file.write_text("cpu  160 0 70 900 70 0 0 0 90 0\n")  # guest is inside user: not added
    assert util() == pytest.approx(80 / 200)
    assert util() == pytest.approx(80 / 200)  # no time since: the last value


def test_cpu_utilisation_of_this_machine_rises_under_load() -> None:
    util = CpuUtilisation()
    since_boot = util()
    assert 0.0 <= since_boot <= 1.0
    spin = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    for p in spinners:
        p.wait(timeout=30)
    busy = util()
    assert 0.5 <= busy <= 1.0  # every CPU spun for a second


# --- measured, else estimated ----------------------------------------------------------------


def test_measured_wins_and_names_its_meters(tmp_path: Path) -> None:
    classdir, clock = _rapl_tree(tmp_path, packages=1), _Clock()
    source = PowerSource([RaplMeter(classdir, clock)], tdp_w=500.0, utilisation=lambda: 1.0)
    _set_energy(classdir, "intel-rapl:0", 1_000_000 + 30_000_000)
    clock.now += 1.0
    assert source.read() == Power(30.0, False, "measured: RAPL 1 CPU package(s)")


def test_estimate_is_labelled_and_used_when_nothing_is_measured(tmp_path: Path) -> None:
    source = PowerSource(tdp_w=300.0, idle_w=60.0, utilisation=lambda: 0.5)
    power = source.read()
    assert power is not None
    assert (power.watts, power.estimated) == (180.0, True)
    assert power.basis == "estimate: idle 60 W + (TDP 300 W - idle) x CPU utilisation"
    # A meter that fails this once is left out; with none left, the estimate.
    classdir = _rapl_tree(tmp_path, packages=1)
    meter = RaplMeter(classdir)
    (classdir / "intel-rapl:0" / "energy_uj").write_text("gone\n")
    failing = PowerSource([meter], tdp_w=300.0, utilisation=lambda: 0.0)
    assert failing.read() == Power(
        0.0, True, "estimate: idle 0 W + (TDP 300 W - idle) x CPU utilisation"
    )


def test_nothing_measured_and_no_tdp_is_none() -> None:
    assert PowerSource().read() is None
    with pytest.raises(ValueError, match="idle_w"):
        PowerSource(tdp_w=100.0, idle_w=150.0)


def test_detect_on_this_machine_says_why_for_each_missing_meter() -> None:
    source = PowerSource.detect(tdp_w=65.0)
    measured = {m.basis.split()[0] for m in source.meters}
    assert "rapl" in source.unavailable or "RAPL" in measured
    assert "nvml" in source.unavailable or "NVML" in measured
    power = source.read()
    assert power is not None  # measured, or else estimated from the TDP
    if not source.meters:
        assert power.estimated and 0.0 <= power.watts <= 65.0


# --- the log ----------------------------------------------------------------------------------


def test_log_average_is_time_weighted_and_carries_the_estimate_flag(engine: Engine) -> None:
    log = PowerLog(engine, PowerSource())
    log.record("gpu-1", measured_power(100.0, "measured: NVML 8 GPU(s)"), 1000.0)
    log.record("gpu-1", measured_power(200.0, "measured: NVML 8 GPU(s)"), 1010.0)
    log.record("gpu-1", Power(50.0, True, "estimate: TDP"), 1040.0)
    log.record("gpu-2", measured_power(9999.0), 1020.0)  # another node: not mixed in
    watts, estimated, basis = log.average_watts("gpu-1", 1000.0, 1040.0) or (0, False, "")
    assert watts == pytest.approx((200 * 10 + 50 * 30) / 40)
    assert estimated is True
    assert basis == "measured: NVML 8 GPU(s); estimate: TDP"
    assert log.average_watts("gpu-1", 1000.0, 1020.0) == (200.0, False, "measured: NVML 8 GPU(s)")
    assert log.average_watts("gpu-1", 1005.0, 1015.0) == (200.0, False, "measured: NVML 8 GPU(s)")
    assert log.average_watts("gpu-1", 2000.0, 3000.0) is None


def test_log_sample_records_this_machine(engine: Engine) -> None:
    clock = _Clock()
    log = PowerLog(engine, PowerSource(tdp_w=100.0, utilisation=lambda: 0.25), clock=clock)
    assert log.sample("node-a") == Power(
        25.0, True, "estimate: idle 0 W + (TDP 100 W - idle) x CPU utilisation"
    )
    assert log.average_watts("node-a", 0, clock.now) == (
        25.0,
        True,
        "estimate: idle 0 W + (TDP 100 W - idle) x CPU utilisation",
    )
    assert PowerLog(engine, PowerSource()).sample("node-b") is None  # nothing to record


def test_log_prune(engine: Engine) -> None:
    log = PowerLog(engine, PowerSource())
    for at in (0.0, 100.0, 200.0):
        log.record("n", measured_power(at + 1), at)
    assert log.prune(150.0) == 2
    assert log.average_watts("n", 0.0, 1e9) == (201.0, False, "measured")


async def test_log_periodic_samples_and_prunes(engine: Engine) -> None:
    log = PowerLog(engine, PowerSource(tdp_w=10.0, utilisation=lambda: 1.0), keep_days=1)
    log.record("n", measured_power(1.0), 0.0)  # 1970: past any retention
    task = log.periodic(every_s=0.05, node="n")
    task.start()
    await asyncio.sleep(0.3)
    await task.stop()
    with engine.connect() as conn:
        ats = conn.execute(select(PowerSample.at).where(PowerSample.node == "n")).scalars().all()
    assert len(ats) >= 2 and min(ats) > 0.0  # sampled, and the 1970 sample pruned
