#!/usr/bin/env bash
# Builds llama.cpp's C++ `llama-server` from the source vendored in the llama-cpp-python sdist
# (the only registry that carries it here). Its server gives what the gateway needs and the
# Python server lacks: usage in streams, Prometheus counters, parallel slots with prompt caches.
#
# Portable: on x86-64 the CPU code is built once per instruction-set level (ggml's
# GGML_CPU_ALL_VARIANTS) and the engine loads the best one the CPU supports when it starts,
# so a build runs on any x86-64 machine, not only on the one that compiled it. The AMX
# variant (sapphirerapids) is left out: its kernels crashed at the first decode on an AMX
# Xeon VM (SIGSEGV in ggml_backend_amx_mul_mat); AVX-512 serves those CPUs instead.
#
# Every build, and every cached build on every run, must pass a smoke test that decodes a few
# tokens of the shipped model; a failure is loud and leaves nothing installed.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
# Where the build lives and which sdist it comes from: the Python side's facts, asked once.
read -r VERSION DEFAULT_DEST < <("$PYTHON" -c '
from tokenmill.engines.llamacpp import LLAMA_CPP_PYTHON_VERSION, default_build_dir
print(LLAMA_CPP_PYTHON_VERSION, default_build_dir())')
VERSION="${LLAMA_CPP_PYTHON_VERSION:-$VERSION}"
DEST="${TOKENMILL_ENGINE_DIR:-$DEFAULT_DEST}"
SMOKE=("$PYTHON" -m tokenmill.runtime.smoke)

if [[ -x "$DEST/bin/llama-server" ]]; then
  echo "llama-server: cached at $DEST/bin/llama-server"
  if "${SMOKE[@]}" --binary "$DEST/bin/llama-server"; then
    exit 0
  fi
  echo "llama-server: the cached build does not decode on this machine; rebuilding" >&2
  rm -rf "$DEST"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${LLAMA_CPP_SDIST:-}" ]]; then
  cp "$LLAMA_CPP_SDIST" "$WORK/"
else
  echo "llama-server: downloading llama-cpp-python==$VERSION source from PyPI"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$WORK"
fi
tar -xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
SRC="$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"

CPU_FLAGS=(-DGGML_NATIVE=ON)
if [[ "$(uname -m)" == "x86_64" ]]; then
  # Shared libraries found next to the binary ($ORIGIN), CPU variants loaded at run time.
  CPU_FLAGS=(-DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON
    -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON "-DCMAKE_INSTALL_RPATH=\$ORIGIN")
else
  CPU_FLAGS+=(-DBUILD_SHARED_LIBS=OFF)
fi

echo "llama-server: compiling (about 5-10 minutes on 2 cores, done once)"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release "${CPU_FLAGS[@]}" \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF \
  >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; exit 1; }
cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1 \
  || { tail -50 "$WORK/build.log"; exit 1; }

rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp/bin"
cp "$WORK/build/bin/llama-server" "$DEST.tmp/bin/"
# The shared libraries and CPU variants, when built so; the AMX variant stays behind.
find "$WORK/build/bin" -maxdepth 1 -name 'lib*.so*' ! -name 'libggml-cpu-sapphirerapids.so' \
  -exec cp -P {} "$DEST.tmp/bin/" \;

if ! "${SMOKE[@]}" --binary "$DEST.tmp/bin/llama-server"; then
  rm -rf "$DEST.tmp"
  echo "llama-server: BUILD UNUSABLE: it does not decode on this machine (see above)" >&2
  exit 1
fi
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "llama-server: built at $DEST/bin/llama-server"
