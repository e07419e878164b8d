# syntax=docker/dockerfile:1
# Multi-stage build: compile with dev dependencies, ship only the compiled service, its production
# dependencies and the migrations, running as uid 1001. The image runs with a read-only root
# filesystem: nothing is written outside /tmp (mount an emptyDir or tmpfs there).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's postinstall applies infra/patches (a postgres.js fix, see docs/reliability.md).
COPY infra/patches ./infra/patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY drizzle ./drizzle
COPY lib ./lib
COPY handlers ./handlers
# `npm run build` also bundles the functions build (infra/functions/build.mjs).
COPY infra/functions ./infra/functions
RUN npm run build && npm prune --omit=dev
# Left out because production never loads them (tests/infra/image.test.ts: nothing the image runs
# imports them statically): PGlite, the embedded database (ENVIRONMENT=production requires
# PostgreSQL); the functions bundles, deployed to their own platforms; and the local Fiuu sandbox,
# which the Node server imports only when FIUU_LOCAL_SANDBOX is on (development and test).
RUN rm -rf node_modules/@electric-sql/pglite dist/functions dist/lib/adapters/fiuu/sandbox

FROM node:24-bookworm-slim
# HOME=/tmp: nothing may write to a home directory on a read-only root. DATA_DIR is unused with
# PostgreSQL (ENVIRONMENT=production requires it) but points into /tmp should anything ask.
ENV NODE_ENV=production \
    ENVIRONMENT=production \
    HOME=/tmp \
    DATA_DIR=/tmp/payment-service \
    HOST=0.0.0.0 \
    PORT=8086 \
    HEALTH_CHECK_PORT=8087 \
    METRICS_PORT=9090
WORKDIR /app
RUN groupadd --system --gid 1001 app \
 && useradd --system --uid 1001 --gid app --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app \
 && printf '#!/bin/sh\nexec node /app/dist/lib/entry/migrate.js "$@"\n' > /usr/local/bin/migrate \
 && printf '#!/bin/sh\nexec node /app/dist/lib/entry/audit-verify.js "$@"\n' > /usr/local/bin/audit-verify \
 && chmod 0755 /usr/local/bin/migrate /usr/local/bin/audit-verify
# Owned by root and not writable by uid 1001: the service cannot change its own code.
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root drizzle ./drizzle
USER 1001:1001
EXPOSE 8086 9090 8087
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HEALTH_CHECK_PORT||8087)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The same command as `npm run start:prod`. `migrate up` runs the migrations (a Job or init step;
# as payment_owner, MIGRATION_DATABASE_URL), `audit-verify` checks the audit log's hash chain (as
# payment_analytics will do); both read only the database settings.
# The heap cap is half the Deployment's 512Mi limit; with it V8 collects the old generation early
# (about 130 MB resident under full load, against 200 MB and more with its default sizing).
CMD ["node", "--max-old-space-size=256", "dist/lib/entry/node.js"]
