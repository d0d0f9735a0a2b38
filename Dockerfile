# syntax=docker/dockerfile:1
# Signet controller image: `signet run` on a distroless Node.js 24 base, non-root (65532),
# no shell, read-only-root friendly (writes only to /tmp and /var/cache/signet, both emptyDirs
# in manifests/). hack/runtime-tree.sh assembles the same runtime tree without a container engine.

ARG BUILD_IMAGE=node:24-bookworm-slim
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# 0. The Kustomize engines (docs/kustomize.md) from the pinned Go modules: the native one, which
#    confines itself with Landlock, and the WebAssembly one, used where Landlock is missing. build.sh
#    refuses an engine whose sha256 differs from its pin (hack/kustomize/engine.sha256,
#    engine-native-amd64.sha256) for this Go toolchain.
FROM ${GO_IMAGE} AS kustomize
WORKDIR /src
COPY hack/lib ./hack/lib
COPY hack/kustomize ./hack/kustomize
RUN SIGNET_CACHE=/out hack/kustomize/build.sh engine

# 0b. The Helm engine (WebAssembly, docs/helm.md), the same way; pinned by hack/helm/engine.sha256.
FROM ${GO_IMAGE} AS helm
WORKDIR /src
COPY hack/lib ./hack/lib
COPY hack/helm ./hack/helm
RUN SIGNET_CACHE=/out hack/helm/build.sh engine

# 1. Compile TypeScript with the dev dependencies (typescript) from the lockfile; npm ci's
#    postinstall (patch-package) applies patches/ (ssh2 host certificates, docs/ssh.md).
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# 2. Production dependencies only, into a clean tree (no install scripts run).
FROM ${BUILD_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
#    No scripts run here, so the files patches/ssh2+1.17.0.patch changes come from the build stage.
COPY --from=build /src/node_modules/ssh2/lib/client.js ./node_modules/ssh2/lib/
COPY --from=build /src/node_modules/ssh2/lib/protocol/constants.js /src/node_modules/ssh2/lib/protocol/kex.js ./node_modules/ssh2/lib/protocol/

# 3. Runtime: node, production node_modules, dist/, package.json (read for the version) and the
#    Kustomize and Helm engines (found beside dist/; their digests checked before use). The native
#    Kustomize engine's pin is for linux/amd64: on another architecture it mismatches, and the
#    operator uses the WebAssembly engine.
FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=prod-deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 package.json ./
COPY --from=kustomize --chown=0:0 /out/kustomize/v5.8.2-api0.21.2-abi2/kustomize-engine.wasm ./
COPY --from=kustomize --chown=0:0 /out/kustomize/v5.8.2-api0.21.2-abi2/kustomize-engine ./
COPY --from=helm --chown=0:0 /out/helm/v4.3.2-abi2/helm-engine.wasm ./
ENV NODE_ENV=production \
    HOME=/tmp \
    SIGNET_CACHE_DIR=/var/cache/signet \
    SIGNET_KUSTOMIZE_ENGINE_SHA256=02e5ec22595864e258c2ed38bff0665264d246817b7212d3a6cacab62b578d7c \
    SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256=e823e913a5d7d78a2c0201a08bf686a8b6648be8369b6d1a687deea9557a131b \
    SIGNET_HELM_ENGINE_SHA256=35422ab54637da2c214730a03857c859011c563749dab7bec8722f149e9316a4
USER 65532:65532
EXPOSE 8080 8081
# The distroless nodejs images set ENTRYPOINT ["/nodejs/bin/node"] and have no `node` on a
# shell PATH (there is no shell); naming the interpreter by absolute path keeps the exec form
# explicit, and Kubernetes `args:` are appended after `run`. --max-semi-space-size=8 caps V8's
# young generation at 8 MiB (its default grows to 32 MiB while informers fill): the operator's
# resident memory per tracked object roughly halves for no measurable reconcile time.
# --optimize-for-size is V8's mode that favours memory over speed (smaller heap growth steps,
# more frequent collections, leaner code): the 1,000-GitRepository cold start peaks at ~150 MiB
# instead of 210-260 MiB, for ~30 % more wall time on that burst (docs/benchmarks.md).
# bin/signet passes the same flags; test/image checks that they agree.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=8", "--optimize-for-size", "/app/dist/cli/main.js", "run"]
