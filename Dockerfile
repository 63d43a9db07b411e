# syntax=docker/dockerfile:1
#
# PgLynx production image.
#
#   docker build -t pglynx .
#   docker run --rm -p 6432:6432 -p 9930:9930 \
#     -v "$PWD/pgcat.toml:/etc/pglynx/pgcat.toml:ro" pglynx
#
# The config is read from /etc/pglynx/pgcat.toml (mount your pgcat.toml
# there, or pass another path as the argument: `docker run ... pglynx
# /path/in/container.toml --log-level debug`). It must listen on 0.0.0.0
# (`[general] host`) to be reachable from outside the container; 6432 is the
# pooler port and 9930 the Prometheus exporter port of the example config.

# --- build: install every dependency and compile TypeScript to dist/ ---------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# .npmrc makes onnxruntime-node's install script skip its CUDA download.
COPY package.json package-lock.json .npmrc ./
RUN npm ci
# The sources tsconfig.json compiles (bin, config, pooler, engine); .dockerignore
# keeps node_modules, dist, tests and local state out of the context.
COPY . .
RUN npm run build

# --- runtime: production dependencies and dist/ only --------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# The embedded PGlite backend resolves a relative data dir against the
# config file's directory (/etc/pglynx, usually a read-only mount), so in a
# container point it at the volume below:
#   servers = [["pglite:/var/lib/pglynx", 0, "primary"]]
# A real Postgres needs none of this: servers = [["db.internal", 5432, "primary"]].
RUN mkdir -p /var/lib/pglynx /etc/pglynx && chown node:node /var/lib/pglynx
VOLUME ["/var/lib/pglynx"]
USER node
EXPOSE 6432 9930
ENTRYPOINT ["node", "dist/bin/pglynx.js"]
CMD ["/etc/pglynx/pgcat.toml"]
