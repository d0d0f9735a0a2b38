#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from Go modules into a versioned cache
# outside the repository, for the side-by-side benchmark (bench/flux.bench.ts). The recipe (this
# script and the wrapper go.mod/go.sum of each controller beside it) lives in the repo; the source
# (Go's module cache) and the binaries never do. Their CRDs are copied from the modules at build time.
#   bin/source-controller      github.com/fluxcd/source-controller   $SOURCE_CONTROLLER_VERSION
#   bin/kustomize-controller   github.com/fluxcd/kustomize-controller $KUSTOMIZE_CONTROLLER_VERSION
#   crds/*.yaml                config/crd/bases of both modules
# Reused when present. Needs Go (hack/go.sh) on PATH.
#
# Usage: bench/flux/build.sh   prints the output directory on stdout
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

SOURCE_CONTROLLER_VERSION=1.9.6
KUSTOMIZE_CONTROLLER_VERSION=1.9.6
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/flux/source-v${SOURCE_CONTROLLER_VERSION}-kustomize-v${KUSTOMIZE_CONTROLLER_VERSION}"
tool=flux
# shellcheck source=../../hack/lib/engine-build.sh
source "$here/../../hack/lib/engine-build.sh"
lock_cache

# The CRDs of a controller module, from Go's module cache (downloaded by its wrapper's go.mod).
copy_crds() { # <wrapper dir> <module path>
  local work="$cache/$tool/src/$(basename "$1")" dir
  dir="$(cd "$work" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "$2")"
  mkdir -p "$out/crds"
  cp "$dir"/config/crd/bases/*.yaml "$out/crds/"
}

start=$(date +%s)
mkdir -p "$out/bin"
goos="$(go env GOHOSTOS)"
goarch="$(go env GOHOSTARCH)"
for controller in source-controller kustomize-controller; do
  if [[ ! -x "$out/bin/$controller" ]]; then
    build_in "$here/$controller" "$out/bin/$controller" "github.com/fluxcd/$controller" "$goos" "$goarch"
  fi
  copy_crds "$here/$controller" "github.com/fluxcd/$controller"
done
finish "flux source-controller v$SOURCE_CONTROLLER_VERSION, kustomize-controller v$KUSTOMIZE_CONTROLLER_VERSION" \
  "$start" bin/source-controller bin/kustomize-controller
