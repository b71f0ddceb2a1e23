"""The llama-server we build runs on any x86-64 CPU: it picks a CPU variant when it starts, no
shipped file holds AMX tile instructions (whose kernels crashed at the first decode on an AMX
Xeon VM), and the binary really decodes the shipped model here."""

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tokenmill.engines.llamacpp import default_binary_path, find_llama_server

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(
        platform.machine() != "x86_64", reason="the portable CPU-variant build is x86-64's"
    ),
]

# AMX's tile instructions, as objdump names them.
AMX_MNEMONICS = ("ldtilecfg", "tileloadd", "tdpbssd", "tdpbf16ps", "tilerelease")


def _shipped() -> list[Path]:
    binary = default_binary_path()
    if not binary.exists():
        pytest.fail(f"no portable build at {binary}: run `make engines`")
    return sorted(p for p in binary.parent.iterdir() if p.is_file() and not p.is_symlink())


def _cpu_variants() -> list[str]:
    return [p.name for p in _shipped() if p.name.startswith("libggml-cpu-")]


def test_the_build_ships_cpu_variants_down_to_baseline_x86_64():
    variants = _cpu_variants()
    assert "libggml-cpu-x64.so" in variants  # any x86-64 at all
    assert "libggml-cpu-haswell.so" in variants  # AVX2
    assert "libggml-cpu-sapphirerapids.so" not in variants  # the AMX one stays out


def test_no_shipped_file_holds_amx_tile_instructions():
    objdump = shutil.which("objdump")
    assert objdump is not None, "objdump (binutils) comes with gcc"
    for path in _shipped():
        listing = subprocess.run(
            [objdump, "-d", "--no-show-raw-insn", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = [m for m in AMX_MNEMONICS if f"\t{m} " in listing or f" {m} " in listing]
        assert not found, f"{path.name} holds AMX instructions: {found}"


def test_the_engine_tokenmill_uses_decodes_here():
    if find_llama_server() != str(default_binary_path()):
        pytest.skip("TOKENMILL_LLAMA_SERVER points at another binary")
    result = subprocess.run(
        [sys.executable, "-m", "tokenmill.runtime.smoke"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "smoke test passed: decoded" in result.stdout
    assert "sapphirerapids" not in result.stdout  # and it says which variant it chose
    assert "libggml-cpu-" in result.stdout
