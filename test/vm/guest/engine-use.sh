#!/bin/bash
# Switches the guest's dockerd to an engine: engine-use.sh <host|sid|trixie> [--daemon-json FILE] [--fresh-xfs]
#   host          Debian 12's dockerd 20.10 of the image (dockerd-ctl.sh, as set up by setup-env.sh)
#   sid | trixie  28.5 / 26.1 from the engine root the host shared (runInVm({ engines: [...] }), 9p tag
#                 engine-<name>), mounted read-only at /opt/engines/<name>/lower with a tmpfs overlay on
#                 top at /opt/engines/<name>/root (mount points for binds; nothing reaches the host), run
#                 by engine-dockerd.sh through test/engines/run-dockerd.sh (own mount namespace)
#   --daemon-json FILE  use FILE as daemon.json ($AUTOGROW_DOCKERD_CONFIG) from now on
#   --fresh-xfs         overlay2-xfs environment: a new XFS (mkfs, mount pquota) under the data root,
#                       so each engine starts from an empty data root
# Stops the running dockerd first, starts the new one, imports $AUTOGROW_BUSYBOX_IMAGE if missing.
# Last line: `engine-use: <engine> server=<version> driver=<driver>`. DOCKER_HOST does not change
# (/var/run/docker.sock), and `dockerd-ctl.sh start|stop|restart` then controls the selected engine.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$AUTOGROW_VM_ENV_FILE"
ENGINE=${1:?usage: engine-use.sh <host|sid|trixie> [--daemon-json FILE] [--fresh-xfs]}
shift
DAEMON_JSON="" FRESH_XFS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --daemon-json) DAEMON_JSON=${2:?--daemon-json needs a file}; shift 2 ;;
    --fresh-xfs) FRESH_XFS=1; shift ;;
    *) die "engine-use: unknown argument $1" ;;
  esac
done
STATE_DIR=/run/autogrow-engine
P9=trans=virtio,version=9p2000.L,msize=512000

bash "$HERE/dockerd-ctl.sh" stop

case "$ENGINE" in
  host)
    rm -f "$STATE_DIR/engine.env"
    [ -L /run/docker.sock ] && rm -f /run/docker.sock
    ;;
  sid | trixie)
    lower=/opt/engines/$ENGINE/lower root=/opt/engines/$ENGINE/root layer=/run/engines/$ENGINE
    mkdir -p "$lower" "$root" "$layer/upper" "$layer/work" "$STATE_DIR"
    if ! mountpoint -q "$lower"; then
      mount -t 9p -o "$P9,cache=loose,ro" "engine-$ENGINE" "$lower" ||
        die "engine-use: no share engine-$ENGINE (runInVm({ engines: ['$ENGINE'] }))"
    fi
    [ -x "$lower/usr/sbin/dockerd" ] || die "engine-use: $lower has no dockerd"
    mountpoint -q "$root" ||
      mount -t overlay "engine-$ENGINE" -o "lowerdir=$lower,upperdir=$layer/upper,workdir=$layer/work" "$root"
    printf 'AUTOGROW_ENGINE=%q\nAUTOGROW_ENGINE_ROOT=%q\n' "$ENGINE" "$root" >"$STATE_DIR/engine.env"
    ;;
  *) die "engine-use: unknown engine '$ENGINE' (host|sid|trixie)" ;;
esac

if [ "$FRESH_XFS" = 1 ]; then
  [ -n "${AUTOGROW_XFS_MOUNT:-}" ] || die "engine-use: --fresh-xfs needs the overlay2-xfs environment"
  umount "$AUTOGROW_XFS_MOUNT"
  mkfs.xfs -q -f "$AUTOGROW_XFS_DEV"
  mount -o pquota "$AUTOGROW_XFS_DEV" "$AUTOGROW_XFS_MOUNT"
fi
[ -n "$DAEMON_JSON" ] && cp "$DAEMON_JSON" "${AUTOGROW_DOCKERD_CONFIG:-/etc/docker/daemon.json}"

bash "$HERE/dockerd-ctl.sh" start
image=${AUTOGROW_BUSYBOX_IMAGE:-autogrow-busybox:test}
docker image inspect "$image" >/dev/null 2>&1 || import_busybox "$image"
echo "engine-use: $ENGINE server=$(docker version -f '{{.Server.Version}}') driver=$(docker info -f '{{.Driver}}')"
