#!/usr/bin/env bash
# Runs every check of `make test` and ends with one plain line: `N passed, N failed`.
# Lint and typecheck count as one check each; every vitest test (unit and real-cluster) counts as one.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
passed=0
failed=0
step() { # <name> <command...>
  local name="$1"; shift
  echo "==> $name"
  if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name" >&2; failed=$((failed + 1)); fi
}
step lint npx biome check .
step typecheck npx tsc --noEmit -p tsconfig.json
step build npx tsc -p tsconfig.build.json
if ! hack/controlplane/build.sh >/dev/null; then
  echo "FAILED: control plane build" >&2; failed=$((failed + 1))
fi
# The Kustomize engine and the reference kustomize CLI (test/support/kustomize.ts reuses the cache).
if ! PATH="$(hack/go.sh):$PATH" hack/kustomize/build.sh >/dev/null; then
  echo "FAILED: kustomize engine build" >&2; failed=$((failed + 1))
fi
# The Helm engine and the reference helm CLI (test/support/helm.ts reuses the cache).
if ! PATH="$(hack/go.sh):$PATH" hack/helm/build.sh >/dev/null; then
  echo "FAILED: helm engine build" >&2; failed=$((failed + 1))
fi
# The image tests' registry and cosign (test/support/oci-registry.ts and cosign.ts reuse the cache;
# cosign takes about 7 minutes cold on 2 cores, see docs/images.md).
if ! PATH="$(hack/go.sh):$PATH" hack/registry/build.sh >/dev/null; then
  echo "FAILED: registry build" >&2; failed=$((failed + 1))
fi
if ! PATH="$(hack/go.sh):$PATH" hack/cosign/build.sh >/dev/null; then
  echo "FAILED: cosign build" >&2; failed=$((failed + 1))
fi
report=.signet/vitest-report.json
mkdir -p .signet
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report"
vitest_rc=$?
if [[ -f "$report" ]]; then
  read -r vp vf < <(node -e 'const r=require(process.argv[1]);console.log(r.numPassedTests, r.numFailedTests + (r.numTotalTests===0?1:0))' "$PWD/$report")
  passed=$((passed + vp)); failed=$((failed + vf))
  if [[ $vitest_rc -ne 0 && $vf -eq 0 ]]; then failed=$((failed + 1)); fi
else
  echo "FAILED: vitest produced no report" >&2; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
