#!/usr/bin/env bash
# Builds the reference `cosign` CLI from Go modules into a versioned cache outside the repository.
# The image tests (test/support/cosign.ts) sign images with it, keyed with --tlog-upload=false, in
# both of cosign's storage formats, and use `cosign verify` as the oracle. The recipe (this script and
# the wrapper go.mod/go.sum in cli/, which pin every module) lives in the repo; the binary never does.
# SHA256SUMS beside it records its digest.
#
# Usage: hack/cosign/build.sh   prints the output directory on stdout (the binary is bin/cosign)
# Env:   SIGNET_CACHE (default ~/.cache/signet)
# Cold (empty module and build caches): 337 CPU-seconds and 1.5 GB RSS, 1.8 GB of modules; see docs/images.md.
set -euo pipefail

COSIGN_VERSION=3.1.3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
out="$cache/cosign/v${COSIGN_VERSION}"
tool=cosign
# shellcheck source=../lib/engine-build.sh
source "$here/../lib/engine-build.sh"
lock_cache

start=$(date +%s)
if [[ ! -x "$out/bin/cosign" ]]; then
  mkdir -p "$out/bin"
  build_in "$here/cli" "$out/bin/cosign" github.com/sigstore/cosign/v3/cmd/cosign \
    "$(go env GOHOSTOS)" "$(go env GOHOSTARCH)" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=v$COSIGN_VERSION"
fi
finish "cosign v$COSIGN_VERSION" "$start" bin/cosign
