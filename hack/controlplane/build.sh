#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules
# into a versioned cache outside the repository. The recipe (this script and the
# wrapper go.mod/go.sum files beside it) lives in the repo; the binaries never do.
#
# Usage: hack/controlplane/build.sh            prints the bin directory on stdout
# Env:   SIGNET_CACHE (default ~/.cache/signet)
set -euo pipefail

K8S_VERSION=1.36.3
K8S_MINOR=36
ETCD_VERSION=3.6.16
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGNET_CACHE:-$HOME/.cache/signet}"
bin="$cache/k8s/v${K8S_VERSION}-etcd${ETCD_VERSION}/bin"
mkdir -p "$bin"

log() { echo "[controlplane-build] $*" >&2; }

build_in() { # <module dir> <output> <package> [ldflags]
  local src="$1" out="$2" pkg="$3" ldflags="${4:-}"
  local work="$cache/k8s/src/$(basename "$src")"
  mkdir -p "$work"
  cp "$src/go.mod" "$src/go.sum" "$work/"
  log "building $(basename "$out") from $pkg"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags selinux,notest \
    -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
}

start=$(date +%s)
if [[ ! -x "$bin/etcd" ]]; then
  build_in "$here/etcd" "$bin/etcd" go.etcd.io/etcd/server/v3
fi

x=""
for kv in gitVersion=v$K8S_VERSION gitMajor=1 gitMinor=$K8S_MINOR gitTreeState=clean buildDate=2026-01-01T00:00:00Z; do
  x="$x -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
for cmd in kube-apiserver kube-controller-manager kubectl; do
  if [[ ! -x "$bin/$cmd" ]]; then
    build_in "$here/k8s" "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd" "$x"
  fi
done
log "binaries ready in $bin ($(( $(date +%s) - start ))s)"
echo "$bin"
