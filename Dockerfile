# docker-autogrow container image.
#
# Build:  docker build -t docker-autogrow .
# Run:    see docs/deploy.md ("Container image"): the agent needs --privileged, /dev, host PID,
#         /var/lib/docker with rslave propagation and the Docker socket.
#
# BASE_IMAGE must be a Debian bookworm image with Node 20 at /usr/local/bin/node, npm, and a
# `node` user (uid 1000): the official image. Tests build against a locally made equivalent
# (mmdebstrap + Node) because no registry is reachable there.
ARG BASE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript as an unprivileged user --------------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN chown node:node /src
USER node
# Dependencies first: this layer is reused until package*.json change.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY --chown=node:node tsconfig.json ./
COPY --chown=node:node src ./src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && chmod 0755 dist/src/main.js

# ---- runtime: production dependencies, compiled code and the storage tools ------------------
FROM ${BASE_IMAGE} AS runtime
# The tools the agent runs on the host's storage (through its command runner):
#   dmsetup, lvm2 (lvs/vgs/lvextend), thin-provisioning-tools (thin_check for dm pools),
#   xfsprogs (xfs_growfs, xfs_quota, xfs_io), e2fsprogs (resize2fs), btrfs-progs,
#   util-linux (findmnt, losetup, blkid, nsenter), coreutils (stat, df, truncate: in the base).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      dmsetup lvm2 thin-provisioning-tools xfsprogs e2fsprogs btrfs-progs util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/docker-autogrow
# Root-owned in the runtime: the unprivileged build user must not be able to change the code that
# later runs as root.
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist/src ./dist/src
RUN ln -s /opt/docker-autogrow/dist/src/main.js /usr/local/bin/docker-autogrow \
 && mkdir -p /etc/docker-autogrow /var/lib/docker-autogrow
# Configuration: mount a file at /etc/docker-autogrow/config.yaml (the default path); without one
# the agent runs on its embedded defaults.
ENV NODE_ENV=production
# Same heap and malloc settings as the systemd unit (docs/benchmarks.md: a 1 MiB young generation and
# two malloc arenas cut RSS at rest)
ENV NODE_OPTIONS=--max-semi-space-size=1 \
    MALLOC_ARENA_MAX=2
# Root at runtime is a requirement, not an oversight: device-mapper ioctls, quotactl and XFS/btrfs
# ioctls need CAP_SYS_ADMIN on the host (the container runs --privileged anyway).
USER root
EXPOSE 9839
# /healthz on the default metrics address; change it with metrics.listen and this line together.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9839/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/docker-autogrow/dist/src/main.js"]
CMD ["run"]
