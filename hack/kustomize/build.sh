#!/usr/bin/env bash
# Builds Signet's Kustomize engine and the reference `kustomize` CLI from Go modules into a
# versioned cache outside the repository. The recipe (this script, engine/main.go and the
# wrapper go.mod/go.sum files beside it) lives in the repo; the binaries never do.
#   kustomize-engine.wasm  engine/main.go for GOOS=wasip1 GOARCH=wasm: what Signet runs where the
#                          native engine cannot be confined
#   kustomize-engine       engine/ (main.go and landlock_linux.go) for linux, this machine's
#                          architecture: confines itself with Landlock; what Signet runs where it can
#   kustomize              sigs.k8s.io/kustomize/kustomize/v5, native: the reference for the
#                          differential tests and the benchmarks
# Both pin sigs.k8s.io/kustomize/api $API_VERSION (kustomize/v5 $KUSTOMIZE_VERSION uses it).
# SHA256SUMS beside them records their digests; engine.sha256 pins the WebAssembly engine's and
# engine-native-<arch>.sha256 the native engine's (see check_pin); SIGNET_KUSTOMIZE_ENGINE_SHA256 and
# SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256 make Signet check them before use (the image sets both).
#
# Usage: hack/kustomize/build.sh [engine|cli|all]   prints the output directory on stdout
#        ("engine" builds both engines)
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

KUSTOMIZE_VERSION=5.8.2
API_VERSION=0.21.2
# The engine's host interface (src/render/wasm-runner.ts ENGINE_ABI): 2 imports signet.await_request.
ENGINE_ABI=2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/kustomize/v${KUSTOMIZE_VERSION}-api${API_VERSION}-abi${ENGINE_ABI}"
what="${1:-all}"
tool=kustomize
# shellcheck source=../lib/engine-build.sh
source "$here/../lib/engine-build.sh"
lock_cache

start=$(date +%s)
if [[ "$what" == engine || "$what" == all ]] && [[ ! -f "$out/kustomize-engine.wasm" ]]; then
  build_in "$here/engine" "$out/kustomize-engine.wasm" . wasip1 wasm
  check_pin kustomize-engine.wasm
fi
if [[ "$what" == engine || "$what" == all ]] && [[ ! -x "$out/kustomize-engine" ]]; then
  arch="$(go env GOHOSTARCH)"
  build_in "$here/engine" "$out/kustomize-engine" . linux "$arch"
  check_pin kustomize-engine "engine-native-$arch.sha256"
fi
if [[ "$what" == cli || "$what" == all ]] && [[ ! -x "$out/kustomize" ]]; then
  build_in "$here/cli" "$out/kustomize" sigs.k8s.io/kustomize/kustomize/v5 "$(go env GOHOSTOS)" \
    "$(go env GOHOSTARCH)" "-X sigs.k8s.io/kustomize/api/provenance.version=v$KUSTOMIZE_VERSION"
fi
finish "kustomize v$KUSTOMIZE_VERSION (api v$API_VERSION)" "$start" kustomize-engine.wasm kustomize-engine kustomize
