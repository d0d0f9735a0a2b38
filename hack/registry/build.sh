#!/usr/bin/env bash
# Builds signet-test-registry (main.go here: the in-memory OCI registry of
# github.com/google/go-containerregistry with TLS, token auth, a request log and fault injection;
# see the header of main.go) from Go modules into a versioned cache outside the repository.
# test/support/oci-registry.ts runs it. go.mod/go.sum here pin every module; the binary never
# enters the repo. SHA256SUMS beside it records its digest.
#
# Usage: hack/registry/build.sh   prints the output directory on stdout (the binary is bin/registry)
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

GGCR_VERSION=0.22.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
# The wrapper's own source is part of the version: an edit to main.go builds a new binary.
recipe="$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out="$cache/registry/ggcr-v${GGCR_VERSION}-${recipe}"
tool=registry
# shellcheck source=../lib/engine-build.sh
source "$here/../lib/engine-build.sh"
lock_cache

start=$(date +%s)
if [[ ! -x "$out/bin/registry" ]]; then
  mkdir -p "$out/bin"
  build_in "$here" "$out/bin/registry" . "$(go env GOHOSTOS)" "$(go env GOHOSTARCH)"
fi
finish "signet-test-registry (go-containerregistry v$GGCR_VERSION)" "$start" bin/registry
