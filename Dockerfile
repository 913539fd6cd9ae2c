# redis-fdw-proxy container image.
#
#   docker build -t redis-fdw-proxy .
#   docker run --rm -p 6432:6432 -p 9432:9432 \
#     -e REDIS_FDW_PROXY_UPSTREAM=postgres://db.example:5432/postgres \
#     redis-fdw-proxy
#
# Without REDIS_FDW_PROXY_UPSTREAM the proxy runs its embedded Postgres, with its data in the
# volume /data (the password for the `postgres` role is in /data/password).
# Metrics, /health and /ready are served on port 9432.
#
# Every CLI flag can be given as an argument (they replace the empty CMD) or as
# its REDIS_FDW_PROXY_<FLAG> environment variable; a flag wins over its variable.

############################
# Build stage: compile TypeScript, then drop dev dependencies.
############################
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Dependencies first, so this layer is cached until the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# Only the proxy's sources: tests and benchmarks are not part of the image.
COPY tsconfig.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

############################
# Runtime stage
############################
FROM node:20-bookworm-slim AS runtime
WORKDIR /app

ENV NODE_ENV=production \
    REDIS_FDW_PROXY_LISTEN=0.0.0.0:6432 \
    REDIS_FDW_PROXY_METRICS_LISTEN=0.0.0.0:9432 \
    REDIS_FDW_PROXY_DATA_DIR=/data

# Owned by root and read-only for the `node` user that runs the proxy.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

# The embedded Postgres's data directory, used when no upstream is configured.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node

EXPOSE 6432 9432

# Ready: upstream and every Redis the proxy uses answer. The port follows REDIS_FDW_PROXY_METRICS_LISTEN.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.REDIS_FDW_PROXY_METRICS_LISTEN||'').split(':').pop()||'9432';fetch('http://127.0.0.1:'+p+'/ready').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node is PID 1; the proxy handles SIGTERM/SIGINT itself (graceful drain, --shutdown-timeout).
ENTRYPOINT ["node", "dist/src/cli/main.js"]
# Listen address comes from REDIS_FDW_PROXY_LISTEN above; arguments given to
# `docker run IMAGE ...` are passed to the CLI.
CMD []
