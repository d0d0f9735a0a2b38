#!/usr/bin/env bash
# Builds Signet's Helm engine and the reference `helm` CLI from Go modules into a versioned cache
# outside the repository, as hack/kustomize/build.sh does for Kustomize. The recipe (this script,
# engine/main.go and the wrapper go.mod/go.sum files beside it) lives in the repo; the binaries never do.
#   helm-engine.wasm  engine/main.go for GOOS=wasip1 GOARCH=wasm: what Signet runs
#   helm              helm.sh/helm/v4/cmd/helm, native: the reference for the differential tests
#                     and the benchmarks (`helm template`)
# Both pin helm.sh/helm/v4 $HELM_VERSION and are stamped with that version (.Capabilities.HelmVersion).
# SHA256SUMS beside them records their digests; engine.sha256 pins the engine's (see check_pin), and
# SIGNET_HELM_ENGINE_SHA256 makes Signet check it when it loads the module.
#
# Usage: hack/helm/build.sh [engine|cli|all]   prints the output directory on stdout
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

HELM_VERSION=4.3.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/helm/v${HELM_VERSION}"
what="${1:-all}"
mkdir -p "$out"
# Test files build on first use in parallel: one build at a time, the others then reuse it.
exec 9>"$cache/helm/.build.lock"
flock 9

log() { echo "[helm-build] $*" >&2; }

# The version stamp `make build` of Helm itself sets (internal/version), so that both binaries
# report the same .Capabilities.HelmVersion.
ldflags="-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

build_in() { # <module dir> <output> <package> <GOOS> <GOARCH>
  local src="$1" dest="$2" pkg="$3" goos="$4" goarch="$5"
  local work="$cache/helm/src/$(basename "$src")"
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
  actual="$(sha256sum "$out/helm-engine.wasm" | cut -d' ' -f1)"
  if [[ ! -f "$here/engine.sha256" ]]; then
    log "note: no pin yet (hack/helm/engine.sha256); $go_version gave sha256 $actual"
    return 0
  fi
  read -r pinned_go pinned_sha < <(grep -v '^#' "$here/engine.sha256")
  if [[ "$actual" == "$pinned_sha" ]]; then return 0; fi
  if [[ "$go_version" == "$pinned_go" ]]; then
    log "helm-engine.wasm has sha256 $actual, but $pinned_go must give $pinned_sha (hack/helm/engine.sha256)"
    rm -f "$out/helm-engine.wasm"
    return 1
  fi
  log "note: built with $go_version, not $pinned_go: sha256 $actual differs from the pin $pinned_sha"
}

start=$(date +%s)
if [[ "$what" == engine || "$what" == all ]] && [[ ! -f "$out/helm-engine.wasm" ]]; then
  build_in "$here/engine" "$out/helm-engine.wasm" . wasip1 wasm
  check_pin
fi
if [[ "$what" == cli || "$what" == all ]] && [[ ! -x "$out/helm" ]]; then
  build_in "$here/cli" "$out/helm" helm.sh/helm/v4/cmd/helm "$(go env GOHOSTOS)" "$(go env GOHOSTARCH)"
fi
(
  cd "$out"
  : >SHA256SUMS.tmp
  for file in helm-engine.wasm helm; do
    if [[ -f "$file" ]]; then sha256sum "$file" >>SHA256SUMS.tmp; fi
  done
  mv SHA256SUMS.tmp SHA256SUMS
)
log "helm v$HELM_VERSION ready in $out ($(( $(date +%s) - start ))s)"
sed 's/^/[helm-build]   /' "$out/SHA256SUMS" >&2
echo "$out"
