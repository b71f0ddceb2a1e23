#!/usr/bin/env bash
# Finds or installs Chromium, which the web console's browser tests drive with Playwright
# (tests/console_browser.py), and prints the path of its binary (the last line of output).
#
# TOKENMILL_CHROMIUM if set, else `chromium` on PATH: that one. Otherwise Debian's `chromium`
# package is installed with apt-get, which needs root (Chromium needs dozens of system
# libraries, so unlike promtool it cannot be unpacked into a cache folder). Either way the
# binary must render a blank page headless before its path is printed; a failure stops here,
# loudly. Idempotent: an installed Chromium that works is reused (no network).
#
#   TOKENMILL_CHROMIUM  a Chromium binary to use instead of the one on PATH
set -euo pipefail

# Renders about:blank headless, as the tests will (--no-sandbox: root has no sandbox).
smoke() {
  local profile out
  profile="$(mktemp -d)"
  if ! out="$(timeout 60 "$1" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$profile" --dump-dom about:blank 2>&1)"; then
    rm -rf "$profile"
    echo "chromium: $1 failed to render a blank page headless:" >&2
    echo "$out" | tail -n 20 >&2
    return 1
  fi
  rm -rf "$profile"
  if [[ "$out" != *"<body></body>"* ]]; then
    echo "chromium: $1 rendered no page: $(echo "$out" | tail -n 5)" >&2
    return 1
  fi
}

found() {
  smoke "$1" || exit 1
  echo "chromium: $("$1" --version 2>/dev/null || echo '?') at $1" >&2
  echo "$1"
  exit 0
}

if [[ -n "${TOKENMILL_CHROMIUM:-}" ]]; then
  [[ -x "$TOKENMILL_CHROMIUM" ]] || { echo "chromium: TOKENMILL_CHROMIUM=$TOKENMILL_CHROMIUM is not an executable" >&2; exit 1; }
  found "$TOKENMILL_CHROMIUM"
fi
if bin="$(command -v chromium)"; then
  found "$bin"
fi

if [[ "$(id -u)" -ne 0 ]]; then
  cat >&2 <<'EOF'
chromium: not found, and installing it needs root. Install Debian's Chromium:
    sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium
or point TOKENMILL_CHROMIUM at a Chromium binary that runs here.
EOF
  exit 1
fi
command -v apt-get >/dev/null || { echo "chromium: not found, and no apt-get here to install Debian's chromium; set TOKENMILL_CHROMIUM" >&2; exit 1; }

echo "chromium: installing Debian's chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-qq -o DPkg::Lock::Timeout=300)
apt-get "${apt_opts[@]}" update >&2
apt-get "${apt_opts[@]}" install -y --no-install-recommends chromium >/dev/null
bin="$(command -v chromium)" || { echo "chromium: apt-get installed chromium, yet it is not on PATH" >&2; exit 1; }
found "$bin"
