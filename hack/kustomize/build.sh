#!/usr/bin/env bash
# Builds Signet's Kustomize engine and the reference `kustomize` CLI from Go modules into a
# versioned cache outside the repository. The recipe (this script, engine/main.go and the
# wrapper go.mod/go.sum files beside it) lives in the repo; the binaries never do.
#   kustomize-engine.wasm  engine/main.go for GOOS=wasip1 GOARCH=wasm: what Signet runs
#   kustomize              sigs.k8s.io/kustomize/kustomize/v5, native: the reference for the
#                          differential tests and the benchmarks
# Both pin sigs.k8s.io/kustomize/api $API_VERSION (kustomize/v5 $KUSTOMIZE_VERSION uses it).
# SHA256SUMS beside them records their digests; engine.sha256 pins the engine's (see check_pin), and
# SIGNET_KUSTOMIZE_ENGINE_SHA256 makes Signet check it when it loads the module (the image sets it).
#
# Usage: hack/kustomize/build.sh [engine|cli|all]   prints the output directory on stdout
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

KUSTOMIZE_VERSION=5.8.2
API_VERSION=0.21.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/kustomize/v${KUSTOMIZE_VERSION}-api${API_VERSION}"
what="${1:-all}"
mkdir -p "$out"
# Test files build on first use in parallel: one build at a time, the others then reuse it.
exec 9>"$cache/kustomize/.build.lock"
flock 9

log() { echo "[kustomize-build] $*" >&2; }

build_in() { # <module dir> <output> <package> <GOOS> <GOARCH> [ldflags]
  local src="$1" dest="$2" pkg="$3" goos="$4" goarch="$5" ldflags="${6:-}"
  local work="$cache/kustomize/src/$(basename "$src")"
  mkdir -p "$work"
  cp "$src"/go.mod "$src"/go.sum "$work/"
  if [[ -f "$src/main.go" ]]; then cp "$src/main.go" "$work/"; fi
  log "building $(basename "$dest") from $pkg ($goos/$goarch)"
  (cd "$work" && CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOFLAGS=-mod=mod \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp" "$pkg")
  mv "$dest.tmp" "$dest"
}

# engine.sha256 pins the engine's digest for one Go toolchain: a build with that toolchain must match
# it (Go builds with -trimpath are reproducible); with another toolchain a difference is reported.
check_pin() {
  local go_version pinned_go pinned_sha actual
  go_version="$(go env GOVERSION)"
  read -r pinned_go pinned_sha < <(grep -v '^#' "$here/engine.sha256")
  actual="$(sha256sum "$out/kustomize-engine.wasm" | cut -d' ' -f1)"
  if [[ "$actual" == "$pinned_sha" ]]; then return 0; fi
  if [[ "$go_version" == "$pinned_go" ]]; then
    log "kustomize-engine.wasm has sha256 $actual, but $pinned_go must give $pinned_sha (hack/kustomize/engine.sha256)"
    rm -f "$out/kustomize-engine.wasm"
    return 1
  fi
  log "note: built with $go_version, not $pinned_go: sha256 $actual differs from the pin $pinned_sha"
}

start=$(date +%s)
if [[ "$what" == engine || "$what" == all ]] && [[ ! -f "$out/kustomize-engine.wasm" ]]; then
  build_in "$here/engine" "$out/kustomize-engine.wasm" . wasip1 wasm
  check_pin
fi
if [[ "$what" == cli || "$what" == all ]] && [[ ! -x "$out/kustomize" ]]; then
  build_in "$here/cli" "$out/kustomize" sigs.k8s.io/kustomize/kustomize/v5 "$(go env GOHOSTOS)" \
    "$(go env GOHOSTARCH)" "-X sigs.k8s.io/kustomize/api/provenance.version=v$KUSTOMIZE_VERSION"
fi
(
  cd "$out"
  : >SHA256SUMS.tmp
  for file in kustomize-engine.wasm kustomize; do
    if [[ -f "$file" ]]; then sha256sum "$file" >>SHA256SUMS.tmp; fi
  done
  mv SHA256SUMS.tmp SHA256SUMS
)
log "kustomize v$KUSTOMIZE_VERSION (api v$API_VERSION) ready in $out ($(( $(date +%s) - start ))s)"
sed 's/^/[kustomize-build]   /' "$out/SHA256SUMS" >&2
echo "$out"
