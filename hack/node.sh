#!/usr/bin/env bash
# Prints the directory of a Node.js 24 binary, installing it from the npm registry's
# `node` package into a cache outside the repo when the system node is older.
set -euo pipefail
NODE_VERSION=24.21.0
cache="${SIGNET_CACHE:-$HOME/.cache/signet}/node/v$NODE_VERSION"
sys_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [[ "$sys_major" -ge 24 && -z "${SIGNET_FORCE_NODE_CACHE:-}" ]]; then
  dirname "$(command -v node)"; exit 0
fi
if [[ ! -x "$cache/node_modules/node/bin/node" ]]; then
  echo "[node] installing node@$NODE_VERSION into $cache" >&2
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-save --no-package-lock --no-audit --no-fund "node@$NODE_VERSION" >&2)
fi
"$cache/node_modules/node/bin/node" --version >/dev/null
echo "$cache/node_modules/node/bin"
