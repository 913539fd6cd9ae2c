# redis-fdw-proxy container image.
#
#   docker build -t redis-fdw-proxy .
#   docker run --rm -p 6432:6432 \
#     -e REDIS_FDW_PROXY_UPSTREAM=postgres://postgres:secret@db.example:5432/postgres \
#     redis-fdw-proxy
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
    REDIS_FDW_PROXY_LISTEN=0.0.0.0:6432

# Owned by root and read-only for the `node` user that runs the proxy.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

USER node

EXPOSE 6432

# Plain TCP connect with node itself (the slim image has no nc/pg_isready).
# The port follows REDIS_FDW_PROXY_LISTEN, so overriding the listen port keeps this working.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "--input-type=commonjs", "-e", "const p=Number((process.env.REDIS_FDW_PROXY_LISTEN||'').split(':').pop())||6432;const s=require('net').connect(p,'127.0.0.1');s.setTimeout(3000);s.on('connect',()=>{s.destroy();process.exit(0)});s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1));"]

# node is PID 1; the proxy handles SIGTERM/SIGINT itself (graceful drain, --shutdown-timeout).
ENTRYPOINT ["node", "dist/src/cli/main.js"]
# Listen address comes from REDIS_FDW_PROXY_LISTEN above; arguments given to
# `docker run IMAGE ...` are passed to the CLI.
CMD []
