#!/usr/bin/env bash
# Finds or fetches `promtool` (Prometheus's rule checker), for the tests that check the alert
# rules in deploy/prometheus/, and prints the folder it is in (the last line of output).
#
# On PATH already: that one. Otherwise Debian's `prometheus` package is downloaded with
# apt-get into a cache folder and unpacked there (`dpkg -x`): no root needed, nothing
# installed on the system. Idempotent: a cached promtool that runs is reused (no network).
#
#   TOKENMILL_PROMTOOL_DIR  where it goes (default: ~/.cache/tokenmill/promtool)
set -euo pipefail

if found="$(command -v promtool)"; then
  dirname "$found"
  exit 0
fi
DEST="${TOKENMILL_PROMTOOL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmill/promtool}"
BIN="$DEST/usr/bin"
if "$BIN/promtool" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
command -v apt-get >/dev/null || { echo "promtool: no apt-get here to fetch Debian's prometheus" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
apt_opts=(-qq -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1)
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" download prometheus >&2)
rm -rf "$DEST.partial" && mkdir -p "$DEST.partial"
dpkg -x "$work"/prometheus_*.deb "$DEST.partial"
"$DEST.partial/usr/bin/promtool" --version >&2  # it runs here, or we stop loudly
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
echo "$BIN"
