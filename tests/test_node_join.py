"""`tokenmill node join ADDRESS`: the `ray start` command that declares this node's accelerators
as Ray resources, built from its inventory; the CLI over it, with vendor tools replaced by
stand-ins printing recorded real output (tests/data/fleet/)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenmill.fleet.inventory import Cpu, Device, NodeInventory
from tokenmill.fleet.ray_resources import ray_resources, ray_start_argv

DATA = Path(__file__).parent / "data" / "fleet"
CLI = [sys.executable, "-c", "from tokenmill.cli.main import app; app()", "node", "join"]
CPU = Cpu(model="Xeon", cores=96, memory_gb=1024.0)


def _devices(n: int, vendor: str, resource: str, model: str, catalog: str | None) -> list[Device]:
    return [Device(vendor, resource, i, model, 64.0, catalog) for i in range(n)]  # type: ignore[arg-type]


def test_eight_ascend_npus_make_the_exact_ray_start_command() -> None:
    inv = NodeInventory("atlas", "127.0.0.1", CPU,
                        tuple(_devices(8, "Huawei", "NPU", "910B3", "ascend-910b")))  # fmt: skip
    assert ray_start_argv("10.0.0.1:6379", inv) == [
        "ray", "start", "--address=10.0.0.1:6379", "--num-cpus=96",
        "--labels=tokenmill.io/node=atlas",
        '--resources={"NPU":8,"accelerator_type:ascend-910b":1}',
    ]  # fmt: skip


def test_gpus_go_through_num_gpus_and_mlu_dcu_are_custom_with_the_node_address() -> None:
    devices = [*_devices(2, "NVIDIA", "GPU", "NVIDIA H100 80GB HBM3", "h100-sxm"),
               *_devices(4, "Cambricon", "MLU", "MLU370-X8", "mlu370-x8"),
               *_devices(1, "Hygon", "DCU", "K100", None)]  # fmt: skip
    inv = NodeInventory("mixed", "10.0.0.7", CPU, tuple(devices))
    assert ray_resources(inv) == {"DCU": 1.0, "GPU": 2.0, "MLU": 4.0,
                                  "accelerator_type:h100-sxm": 1.0,
                                  "accelerator_type:mlu370-x8": 1.0}  # fmt: skip
    assert ray_start_argv("head:6379", inv, ray="/opt/ray") == [
        "/opt/ray", "start", "--address=head:6379", "--num-cpus=96",
        "--labels=tokenmill.io/node=mixed", "--num-gpus=2",
        '--resources={"DCU":1,"MLU":4,"accelerator_type:h100-sxm":1,'
        '"accelerator_type:mlu370-x8":1}',
        "--node-ip-address=10.0.0.7",
    ]  # fmt: skip


def test_a_cpu_only_node_declares_its_cores_only() -> None:
    inv = NodeInventory("box", "127.0.0.1", Cpu("Xeon", 4, 16.0))
    assert ray_start_argv("h:1", inv) == ["ray", "start", "--address=h:1", "--num-cpus=4",
                                          "--labels=tokenmill.io/node=box"]  # fmt: skip


def test_a_node_name_ray_cannot_take_as_a_label_is_refused_with_the_rule() -> None:
    inv = NodeInventory("rack 4/slot 2", "127.0.0.1", Cpu("Xeon", 4, 16.0))
    with pytest.raises(ValueError, match="1-63 letters, digits"):
        ray_start_argv("h:1", inv)


@pytest.fixture
def bins(tmp_path: Path) -> Path:
    """A PATH of sh and cat, and `npu-smi` replaying a recorded 8x Ascend 910B3 node."""
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("sh", "cat"):
        real = Path(f"/bin/{name}")
        (path / name).symlink_to(real if real.exists() else Path(f"/usr/bin/{name}"))
    npu_smi = path / "npu-smi"
    npu_smi.write_text(f'#!/bin/sh\n[ "$1" = info ] && cat {DATA}/npu_smi_info_910b3_x8.txt\n')
    npu_smi.chmod(0o755)
    return path


def _env(path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TOKENMILL_NODE_ADDRESS"}
    return {**env, "PATH": path, "COLUMNS": "200"}


def test_join_dry_run_on_a_recorded_ascend_node(bins: Path) -> None:
    argv = [*CLI, "10.0.0.1:6379", "--dry-run", "--name", "atlas-07"]
    run = subprocess.run(argv, env=_env(str(bins)), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    ray = str(Path(sys.executable).parent / "ray")  # beside this Python: not on PATH here
    cores = len(os.sched_getaffinity(0))
    assert run.stdout.splitlines() == [
        f"{ray} start --address=10.0.0.1:6379 --num-cpus={cores} "
        "--labels=tokenmill.io/node=atlas-07 "
        """'--resources={"NPU":8,"accelerator_type:ascend-910b":1}'"""
    ]


def test_join_without_ray_says_how_to_install_it(bins: Path, tmp_path: Path) -> None:
    # This virtual environment seen from a folder holding no `ray`, and a PATH without one:
    # as the default install, where `import ray` may work but the command is absent.
    venv = Path(sys.prefix)
    clone = tmp_path / "venv"
    (clone / "bin").mkdir(parents=True)
    (clone / "pyvenv.cfg").symlink_to(venv / "pyvenv.cfg")
    (clone / "lib").symlink_to(venv / "lib")
    python = clone / "bin" / "python"
    python.symlink_to(sys.executable)
    run = subprocess.run([str(python), *CLI[1:], "10.0.0.1:6379"], env=_env(str(bins)),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "pip install 'tokenmill[ray]'" in run.stderr
    assert run.stdout == ""
