# syntax=docker/dockerfile:1
# Release Server image: build with dev dependencies, run with production dependencies only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json redocly.yaml ./
COPY scripts/contract-json.mjs scripts/docs-offline.mjs ./scripts/
COPY contracts ./contracts
COPY generated ./generated
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    STORAGE_PATH=/data \
    CONFIG_PATH=/etc/release-server/config.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# The contract is read at run time: the validator checks every request and response against it.
COPY contracts ./contracts
COPY --from=build /app/dist ./dist
# A numeric user, so Kubernetes can verify runAsNonRoot; it owns only /data.
RUN mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# Writes go only to /data (packages) and /tmp, so the root filesystem can be mounted read-only.
CMD ["node", "dist/main.js"]
