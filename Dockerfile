# syntax=docker/dockerfile:1
# envoy-jwt-authz: Envoy / Istio ext_authz (gRPC) server.
#   docker build -t envoy-jwt-authz .
#   docker run --rm -p 9001:9001 -p 9002:9002 envoy-jwt-authz                       # demo mode
#   docker run --rm -p 9001:9001 -p 9002:9002 -v $PWD/config:/etc/envoy-jwt-authz:ro \
#     envoy-jwt-authz serve --config /etc/envoy-jwt-authz/config.yaml
# Other subcommands work the same way: `docker run --rm envoy-jwt-authz keygen --alg ES256`.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript with the full (dev) dependency set -------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` builds, and the sources are not copied yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY protos ./protos
RUN npm run build

# ---- runtime: production dependencies, compiled JS and the protos only ------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build, which needs the dev dependencies; dist/ is copied in.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY protos ./protos
# The official node images ship a non-root user `node` (uid/gid 1000).
# Files stay root-owned and read-only for it; the service writes nothing to disk.
USER node
# 9001: gRPC (envoy.service.auth.v3.Authorization, grpc.health.v1.Health)
# 9002: HTTP (/healthz, /readyz, /metrics, /.well-known/*, /oauth2/*)
EXPOSE 9001 9002
# Liveness over HTTP without curl (not in the slim image). Orchestrators
# (Kubernetes) ignore this and use their own probes. Assumes the default
# http_address port 9002.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9002/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node runs as PID 1 and handles SIGTERM itself (drain, then exit 0); use
# `docker run --init` if you want a separate init process.
# The V8 heap cap, as NODE_OPTIONS so that one setting rules: `docker run -e NODE_OPTIONS=...`
# or the Kubernetes manifest's env replaces it (a --max-old-space-size flag on the
# command line would silently win over NODE_OPTIONS). Every cache is bounded, so live
# memory is too; the cap makes V8 collect at that scale instead of growing the heap
# (see README "Memory").
ENV NODE_OPTIONS=--max-old-space-size=256
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve"]
