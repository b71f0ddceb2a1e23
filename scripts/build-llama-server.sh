#!/usr/bin/env bash
# Builds llama.cpp's C++ `llama-server` from the source vendored in the llama-cpp-python sdist
# (the only registry that carries it here). Its server gives what the gateway needs and the
# Python server lacks: usage in streams, Prometheus counters, parallel slots with prompt caches.
# Idempotent: a finished build is kept in the cache directory and reused.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
DEST="${TOKENMILL_ENGINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmill/llama.cpp-py$VERSION}"
PYTHON="${PYTHON:-python3}"

if [[ -x "$DEST/bin/llama-server" ]]; then
  echo "llama-server: cached at $DEST/bin/llama-server"
  exit 0
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

echo "llama-server: compiling (about 5 minutes on 2 cores, done once)"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF \
  >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; exit 1; }
cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1 \
  || { tail -50 "$WORK/build.log"; exit 1; }

mkdir -p "$DEST.tmp/bin"
cp "$WORK/build/bin/llama-server" "$DEST.tmp/bin/"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "llama-server: built at $DEST/bin/llama-server"
