# syntax=docker/dockerfile:1
# ducc-gitops: the build stage compiles and bundles the TypeScript into dist/; the runtime stage runs it on Node 22.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY scripts/bundle.ts ./scripts/
# The bundle (dist/bundle/, run by bin/ducc.js) starts faster than type-stripped TypeScript; then drop
# the build-only packages (tsc, esbuild).
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
# git for wish-list repositories; ca-certificates for HTTPS registries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/src ./src
COPY package.json ./
COPY bin ./bin
COPY config ./config
# The state (and, through the working directory, relative paths of the config such as the directory
# publisher's ./var/cvmfs) in the volume, the wish-list clones in the cache, both owned by the user that
# runs ducc; it listens on every address of the container, as a published port needs. These take
# precedence over listen, statePath and cacheDir in the mounted config file.
RUN mkdir -p /var/lib/ducc-gitops /var/cache/ducc-gitops \
 && chown node:node /var/lib/ducc-gitops /var/cache/ducc-gitops
ENV NODE_ENV=production \
    DUCC_CONFIG=/etc/ducc-gitops/ducc.yaml \
    DUCC_LISTEN=0.0.0.0:8080 \
    DUCC_STATE_PATH=/var/lib/ducc-gitops/ducc-gitops.db \
    DUCC_CACHE_DIR=/var/cache/ducc-gitops
WORKDIR /var/lib/ducc-gitops
VOLUME ["/var/lib/ducc-gitops"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The V8 flag of bin/ducc.js's first line (see there).
ENTRYPOINT ["node", "--max-semi-space-size=4", "--initial-old-space-size=64", "/app/bin/ducc.js"]
# Secrets come from the environment or *_FILE variables (Docker/Kubernetes secrets), never the image.
CMD ["serve"]
