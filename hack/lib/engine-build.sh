# Sourced by hack/kustomize/build.sh and hack/helm/build.sh: the steps both take to build a WASI
# engine and its reference CLI from Go modules into a versioned cache outside the repository.
# The sourcing script sets: tool (kustomize|helm), here (its directory, holding engine.sha256),
# cache (SIGNET_CACHE or ~/.cache/signet) and out (the versioned output directory).

log() { echo "[$tool-build] $*" >&2; }

# Test files build on first use in parallel: one build at a time, the others then reuse it.
lock_cache() {
  mkdir -p "$out"
  exec 9>"$cache/$tool/.build.lock"
  flock 9
}

build_in() { # <module dir> <output> <package> <GOOS> <GOARCH> [ldflags]
  local src="$1" dest="$2" pkg="$3" goos="$4" goarch="$5" ldflags="${6:-}"
  local work="$cache/$tool/src/$(basename "$out")/$(basename "$src")"
  mkdir -p "$work"
  cp "$src"/go.mod "$src"/go.sum "$work/"
  # The engine's Go files (main.go, prewarm_wasip1.go, and landlock_linux.go for the native
  # build; none for a CLI); stale ones from an earlier checkout are removed first.
  rm -f "$work"/*.go
  find "$src" -maxdepth 1 -name '*.go' -exec cp {} "$work/" \;
  log "building $(basename "$dest") from $pkg ($goos/$goarch)"
  (cd "$work" && CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOFLAGS=-mod=mod \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp" "$pkg")
  mv "$dest.tmp" "$dest"
}

# engine.sha256 pins the engine's digest for one Go toolchain: a build with that toolchain must match
# it (Go builds with -trimpath are reproducible); with another toolchain a difference is reported.
check_pin() { # <engine file name in $out> [pin file in $here, default engine.sha256]
  local engine="$1" pin="${2:-engine.sha256}" go_version pinned_go pinned_sha actual
  go_version="$(go env GOVERSION)"
  actual="$(sha256sum "$out/$engine" | cut -d' ' -f1)"
  if [[ ! -f "$here/$pin" ]]; then
    log "note: no pin yet (hack/$tool/$pin); $go_version gave sha256 $actual"
    return 0
  fi
  read -r pinned_go pinned_sha < <(grep -v '^#' "$here/$pin")
  if [[ "$actual" == "$pinned_sha" ]]; then return 0; fi
  if [[ "$go_version" == "$pinned_go" ]]; then
    log "$engine has sha256 $actual, but $pinned_go must give $pinned_sha (hack/$tool/$pin)"
    rm -f "$out/$engine"
    return 1
  fi
  log "note: built with $go_version, not $pinned_go: sha256 $actual differs from the pin $pinned_sha"
}

# Records the digests of the files built in SHA256SUMS, logs them and prints the output directory.
finish() { # <what is ready> <started (date +%s)> <file>...
  local ready="$1" start="$2"
  shift 2
  (
    cd "$out"
    : >SHA256SUMS.tmp
    for file in "$@"; do
      if [[ -f "$file" ]]; then sha256sum "$file" >>SHA256SUMS.tmp; fi
    done
    mv SHA256SUMS.tmp SHA256SUMS
  )
  log "$ready ready in $out ($(($(date +%s) - start))s)"
  sed "s/^/[$tool-build]   /" "$out/SHA256SUMS" >&2
  echo "$out"
}
