# syntax=docker/dockerfile:1
# ducc-gitops: build stage installs the npm dependencies; the runtime stage runs TypeScript directly on
# Node 22 (type stripping), so no compile step is needed.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
# git for wish-list repositories; ca-certificates for HTTPS registries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY config ./config
ENV NODE_ENV=production
USER node
ENV DUCC_CONFIG=/etc/ducc-gitops/ducc.yaml
VOLUME ["/var/lib/ducc-gitops"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "--disable-warning=ExperimentalWarning", "bin/ducc.ts"]
# Secrets come from the environment or *_FILE variables (Docker/Kubernetes secrets), never the image.
CMD ["serve"]
