#!/usr/bin/env bash
# Prints the directory of a Go toolchain new enough to build the control plane (the highest `go`
# line of hack/controlplane/*/go.mod; Kubernetes 1.36 needs Go >= 1.26). Uses the `go` on PATH or
# /usr/local/go/bin/go when it is new enough; otherwise fetches Go $GO_VERSION from the Go module
# proxy (module golang.org/toolchain, the zip the go command itself downloads for GOTOOLCHAIN
# switches), checks it against the sha256 pinned below and unpacks it into ~/.cache/signet/go.
# Debian's golang-go is too old for this, which is why .ci/run calls this script.
# Env: SIGNET_CACHE (default ~/.cache/signet), GOPROXY (its first http(s) entry is used),
#      SIGNET_FORCE_GO_CACHE=1 (ignore the system go).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_VERSION=1.26.8
# sha256 of https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-<arch>.zip
declare -A GO_ZIP_SHA256=(
  [amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
  [arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99
)

log() { echo "[go] $*" >&2; }

# The newest `go` directive of the control plane's wrapper modules, e.g. 1.26.0.
need="$(awk '$1 == "go" { print $2 }' "$here"/controlplane/*/go.mod | sort -V | tail -n 1)"
if [[ -z "$need" ]]; then
  log "no go directive in $here/controlplane/*/go.mod"
  exit 1
fi

# True when version $1 >= version $2 (dotted numbers, as sort -V orders them).
version_ge() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$2" ]]; }

# The version of the go binary $1 itself (GOTOOLCHAIN=local: never a toolchain it would switch to).
go_version() {
  local out
  out="$(GOTOOLCHAIN=local "$1" version 2>/dev/null)" || return 1
  out="${out#go version go}"
  echo "${out%% *}"
}

if [[ -z "${SIGNET_FORCE_GO_CACHE:-}" ]]; then
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    if version="$(go_version "$candidate")" && [[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]]; then
      if version_ge "$version" "$need"; then
        dirname "$candidate"
        exit 0
      fi
      log "$candidate is go$version; the control plane needs go >= $need"
    fi
  done
fi

case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) log "no pinned Go toolchain for $(uname -m); install Go >= $need"; exit 1 ;;
esac
if [[ "$(uname -s)" != Linux ]]; then
  log "no pinned Go toolchain for $(uname -s); install Go >= $need"
  exit 1
fi
if ! version_ge "$GO_VERSION" "$need"; then
  log "hack/go.sh pins go$GO_VERSION but the control plane needs go >= $need: update GO_VERSION"
  exit 1
fi

module="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch"
dest="${SIGNET_CACHE:-$HOME/.cache/signet}/go/go$GO_VERSION.linux-$arch"
if [[ -x "$dest/bin/go" && "$(go_version "$dest/bin/go" || true)" == "$GO_VERSION" ]]; then
  echo "$dest/bin"
  exit 0
fi

proxy=https://proxy.golang.org
IFS=',|' read -r -a proxies <<<"${GOPROXY:-}"
for entry in "${proxies[@]}"; do
  if [[ "$entry" == http://* || "$entry" == https://* ]]; then proxy="${entry%/}"; break; fi
done
url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"

mkdir -p "$(dirname "$dest")"
work="$(mktemp -d "$(dirname "$dest")/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "fetching go$GO_VERSION ($arch) from $url into $dest"
curl --fail --silent --show-error --location --retry 3 --max-time 900 -o "$work/go.zip" "$url"
if ! echo "${GO_ZIP_SHA256[$arch]}  $work/go.zip" | sha256sum --check --status; then
  log "sha256 of $url is $(sha256sum "$work/go.zip" | cut -d' ' -f1), expected ${GO_ZIP_SHA256[$arch]}"
  exit 1
fi
unzip -q "$work/go.zip" -d "$work/unpacked"
# The module zip keeps no directory modes; the go command marks these executable when it unpacks.
chmod -R a+rX "$work/unpacked"
chmod a+x "$work/unpacked/$module"/bin/* "$work/unpacked/$module"/pkg/tool/*/*
rm -rf "$dest"
mv "$work/unpacked/$module" "$dest"
version="$(go_version "$dest/bin/go")"
if [[ "$version" != "$GO_VERSION" ]]; then
  log "$dest/bin/go reports go$version, expected go$GO_VERSION"
  exit 1
fi
log "go$GO_VERSION ready in $dest"
echo "$dest/bin"
