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
# The engine's host interface (src/render/wasm-runner.ts ENGINE_ABI): 2 imports signet.await_request.
ENGINE_ABI=2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/helm/v${HELM_VERSION}-abi${ENGINE_ABI}"
what="${1:-all}"
tool=helm
# shellcheck source=../lib/engine-build.sh
source "$here/../lib/engine-build.sh"
lock_cache

# The version stamp `make build` of Helm itself sets (internal/version), so that both binaries
# report the same .Capabilities.HelmVersion.
ldflags="-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

start=$(date +%s)
if [[ "$what" == engine || "$what" == all ]] && [[ ! -f "$out/helm-engine.wasm" ]]; then
  build_in "$here/engine" "$out/helm-engine.wasm" . wasip1 wasm "$ldflags"
  check_pin helm-engine.wasm
fi
if [[ "$what" == cli || "$what" == all ]] && [[ ! -x "$out/helm" ]]; then
  build_in "$here/cli" "$out/helm" helm.sh/helm/v4/cmd/helm "$(go env GOHOSTOS)" "$(go env GOHOSTARCH)" \
    "$ldflags"
fi
finish "helm v$HELM_VERSION" "$start" helm-engine.wasm helm
