#!/usr/bin/env bash
# Makes sure `promtool` (Prometheus's rule checker) is on PATH, for the tests that check the
# alert rules in deploy/prometheus/: from Debian's `prometheus` package. Already there: nothing
# to do. Not root and no password-less sudo: says how to install it, and fails.
set -euo pipefail

if command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "promtool: not installed, and installing it needs root: apt-get install -y prometheus" >&2
  exit 1
fi
# policy-rc.d (where present) keeps the package's service from starting: we want the tool only.
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus
command -v promtool >/dev/null || { echo "promtool: still not on PATH after install" >&2; exit 1; }
