# Signet. Every target runs with the project's Node.js 24 (installed into ~/.cache/signet when
# the system node is older) first on PATH.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
NODE_BIN := $(shell hack/node.sh)
export PATH := $(NODE_BIN):$(PATH)

.PHONY: all deps build lint typecheck unit e2e test controlplane kustomize helm registry cosign cluster-up cluster-down demo bench clean

all: build

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json

# The TypeScript build and the Kustomize and Helm engines (hack/*/build.sh, into ~/.cache/signet).
build: deps kustomize helm
	npx tsc -p tsconfig.build.json

lint: deps
	npx biome check .

typecheck: deps
	npx tsc --noEmit -p tsconfig.json

controlplane:
	hack/controlplane/build.sh >/dev/null

# The Kustomize engine (WebAssembly) and the reference kustomize CLI, from Go modules.
kustomize:
	PATH="$$(hack/go.sh):$$PATH" hack/kustomize/build.sh >/dev/null

# The Helm engine (WebAssembly) and the reference helm CLI, from Go modules (docs/helm.md).
helm:
	PATH="$$(hack/go.sh):$$PATH" hack/helm/build.sh >/dev/null

# The image tests' OCI registry and the reference cosign CLI, from Go modules (docs/images.md).
registry:
	PATH="$$(hack/go.sh):$$PATH" hack/registry/build.sh >/dev/null

cosign:
	PATH="$$(hack/go.sh):$$PATH" hack/cosign/build.sh >/dev/null

unit: deps
	npx vitest run --project unit

e2e: deps build controlplane
	npx vitest run --project e2e

# The whole suite: lint, typecheck, unit and real-cluster tests; ends with `N passed, N failed`.
test: deps
	hack/test.sh

cluster-up: deps controlplane
	node e2e/support/cluster-cli.ts up

cluster-down: deps
	node e2e/support/cluster-cli.ts down

demo: deps build controlplane
	node hack/demo.ts

bench: deps build controlplane registry cosign
	node bench/run.ts

clean:
	rm -rf dist .signet
