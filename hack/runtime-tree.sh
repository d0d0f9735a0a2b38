#!/usr/bin/env bash
# Assembles in <dest> exactly the runtime tree the Dockerfile's final stage holds under /app:
#   node_modules/  production dependencies (npm ci --omit=dev --ignore-scripts, from the lockfile)
#   dist/          src/ compiled with tsconfig.build.json (fresh, not the shared ./dist)
#   package.json
#   kustomize-engine.wasm  hack/kustomize/build.sh engine (docs/kustomize.md)
#   kustomize-engine       the same: the native engine, confined by Landlock
#   helm-engine.wasm       hack/helm/build.sh engine (docs/helm.md)
# so `node <dest>/dist/cli/main.js run ...` can be tested without a container engine.
# Usage: hack/runtime-tree.sh <dest>   (<dest> must not exist or be an empty directory)
# test/image/runtime-tree.test.ts reads the Dockerfile and this script and fails when they drift apart.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 <dest>" >&2
  exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$("$repo/hack/node.sh"):$PATH"

dest="$1"
if [[ -e "$dest" && -n "$(ls -A "$dest" 2>/dev/null)" ]]; then
  echo "runtime-tree: $dest exists and is not empty" >&2
  exit 1
fi
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/signet-runtime-tree.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Stage "prod-deps": a clean directory with only the manifest and the lockfile.
cp "$repo/package.json" "$repo/package-lock.json" "$work/"
prod_ci() { (cd "$work" && timeout 600 npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >&2); }
if ! prod_ci; then
  # `npm ci` refuses a lockfile that lacks entries for optional packages of other platforms (a
  # lockfile resolved against a registry that only had linux builds, e.g. @biomejs/cli-*). Those
  # are dev-only, so drop every dev entry from copies of the manifest and the lockfile and retry:
  # the production tree npm installs is the same.
  echo "runtime-tree: npm ci --omit=dev refused the lockfile; retrying with dev entries removed" >&2
  rm -rf "$work/node_modules"
  (cd "$work" && node -e '
    const fs = require("node:fs");
    const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
    delete pkg.devDependencies;
    fs.writeFileSync("package.json", `${JSON.stringify(pkg, null, 2)}\n`);
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    delete lock.packages[""].devDependencies;
    for (const [path, entry] of Object.entries(lock.packages)) if (path !== "" && entry.dev) delete lock.packages[path];
    fs.writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`);
  ')
  prod_ci
fi

# The files patches/ssh2+1.17.0.patch changes, patched by the repository's npm install (postinstall
# patch-package), as the Dockerfile's prod-deps stage copies them from its build stage.
for patched in lib/client.js lib/protocol/constants.js lib/protocol/kex.js; do
  cp "$repo/node_modules/ssh2/$patched" "$work/node_modules/ssh2/$patched"
done
if ! grep -q CERT_SERVER_HOST_KEY "$work/node_modules/ssh2/lib/protocol/constants.js"; then
  echo "runtime-tree: $repo/node_modules/ssh2 is not patched (npm install runs patch-package as its postinstall)" >&2
  exit 1
fi

# Stage "build": compile with the repository's dev toolchain into the destination.
(cd "$repo" && timeout 600 npx tsc -p tsconfig.build.json --outDir "$dest/dist")

# Stage "kustomize": the engine, built (or reused) by the same script into the cache.
engine_dir="$(PATH="$("$repo/hack/go.sh"):$PATH" "$repo/hack/kustomize/build.sh" engine)"
# Stage "helm": the Helm engine, the same way.
helm_dir="$(PATH="$("$repo/hack/go.sh"):$PATH" "$repo/hack/helm/build.sh" engine)"

# Final stage: node_modules + dist + package.json + the Kustomize and Helm engines (nothing else).
mv "$work/node_modules" "$dest/node_modules"
cp "$repo/package.json" "$dest/package.json"
cp "$engine_dir/kustomize-engine.wasm" "$dest/kustomize-engine.wasm"
cp "$engine_dir/kustomize-engine" "$dest/kustomize-engine"
cp "$helm_dir/helm-engine.wasm" "$dest/helm-engine.wasm"
echo "$dest"
