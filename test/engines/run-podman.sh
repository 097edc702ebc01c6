#!/bin/bash
# Runs `podman system service` (rootful) from the podman root (test/engines/podman-root.sh) in its own
# mount namespace, with the root pivoted to (pivot_root, never a plain chroot: dockerd 26/28 in a plain
# chroot ran its containers with the HOST's / as their root filesystem) and /proc, /sys (cgroups), /dev
# mounted inside. Same shape as run-dockerd.sh (which is not reused: its content keys CI's cached roots).
#
# Usage: run-podman.sh <podman-root> <dir>... -- <podman arguments>
#   e.g. run-podman.sh "$ROOT" /tmp/pm -- --root /tmp/pm/storage --runroot /tmp/pm/run \
#          --storage-driver btrfs system service --time=0 unix:///tmp/pm/podman.sock
#   Each <dir> (absolute, under /tmp) is bind-mounted into the new root at the same path, so the socket
#   and the storage have the same paths inside and out (the agent on the host reads them).
# The cached root is mounted read-only; /run, /tmp and /var/tmp are fresh tmpfs. Every step
# execs, so the process started here IS podman in the end (signals reach it; the namespace dies with it).
# Containers run under conmon and OUTLIVE this process, and a service started again (fresh /run, so no
# runc state) cannot kill them: remove every container through the same service before stopping it,
# then stop leftover conmons by pid (exec sessions keep one for 300 s). docs/engines.md "Podman".
set -euo pipefail
if [ "${AGD_IN_NAMESPACE:-}" != 1 ]; then
  export AGD_IN_NAMESPACE=1
  exec /usr/bin/unshare --mount --propagation private /bin/bash "$0" "$@"
fi
ROOT=$1; shift
DIRS=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do DIRS+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ -x "$ROOT/usr/bin/podman" ] || { echo "run-podman: no podman in $ROOT" >&2; exit 2; }

STAGE=/run/docker-autogrow-podman
mkdir -p "$STAGE"
mount -t tmpfs -o mode=0700 tmpfs "$STAGE"
NEW=$STAGE/root
mkdir "$NEW"
mount --bind "$ROOT" "$NEW"
mount -o remount,bind,ro "$NEW"
mount -t tmpfs -o mode=0755 tmpfs "$NEW/run"
mount -t tmpfs -o mode=1777 tmpfs "$NEW/tmp"
# image pulls and imports stage under /var/tmp (the store itself is --root/--runroot, under a <dir>)
mount -t tmpfs -o mode=1777 tmpfs "$NEW/var/tmp"
mount -t proc proc "$NEW/proc"
mount --rbind /sys "$NEW/sys"
mount --rbind /dev "$NEW/dev"
for dir in "${DIRS[@]}"; do
  case "$dir" in
    /tmp/*) ;;
    *) echo "run-podman: $dir is not under /tmp" >&2; exit 2 ;;
  esac
  mkdir -p "$NEW$dir"
  mount --rbind "$dir" "$NEW$dir"
done
mkdir "$NEW/run/agd" && cp /bin/busybox "$NEW/run/agd/busybox"
cd "$NEW"
/usr/sbin/pivot_root . .oldroot
exec /usr/sbin/chroot . /bin/sh -c '/run/agd/busybox umount -l /.oldroot && /run/agd/busybox rm -rf /run/agd && exec /usr/bin/podman "$@"' podman "$@"
