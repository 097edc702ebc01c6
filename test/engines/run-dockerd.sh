#!/bin/bash
# Runs dockerd from an engine root (test/engines/build-root.sh) in its own mount namespace, with the
# root pivoted to (pivot_root, not chroot: a dockerd 26/28 in a plain chroot ran its containers with the
# HOST's / as their root filesystem) and /proc, /sys (cgroups), /dev mounted inside.
#
# Usage: run-dockerd.sh <engine-root> <dir>... -- <dockerd arguments>
#   Each <dir> (absolute, under /tmp; any absolute directory inside the test VM) is bind-mounted into the new root at the same path, so sockets,
#   data roots and pidfiles have the same paths inside and out (the agent on the host reads them).
# The cached root is mounted read-only; /run and /tmp are fresh tmpfs. Every step execs, so the
# process started here IS dockerd in the end (signals reach it; the namespace dies with it).
set -euo pipefail
if [ "${AGD_IN_NAMESPACE:-}" != 1 ]; then
  export AGD_IN_NAMESPACE=1
  exec /usr/bin/unshare --mount --propagation private /bin/bash "$0" "$@"
fi
ROOT=$1; shift
DIRS=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do DIRS+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ -x "$ROOT/usr/sbin/dockerd" ] || { echo "run-dockerd: no dockerd in $ROOT" >&2; exit 2; }

# the new root's mount point lives on a tmpfs private to this namespace: nothing is left on the host
# but one empty, reused directory
STAGE=/run/docker-autogrow-engines
mkdir -p "$STAGE"
mount -t tmpfs -o mode=0700 tmpfs "$STAGE"
NEW=$STAGE/root
mkdir "$NEW"
mount --bind "$ROOT" "$NEW"
mount -o remount,bind,ro "$NEW"
mount -t tmpfs -o mode=0755 tmpfs "$NEW/run"
mount -t tmpfs -o mode=1777 tmpfs "$NEW/tmp"
mount -t proc proc "$NEW/proc"
mount --rbind /sys "$NEW/sys"
mount --rbind /dev "$NEW/dev"
for dir in "${DIRS[@]}"; do
  # on a shared machine only test directories; inside the throw-away test VM (AUTOGROW_VM=1) also the
  # guest's data root and /run/autogrow-engine (test/vm/guest/engine-dockerd.sh)
  case "$dir" in
    /tmp/*) ;;
    /*) [ "${AUTOGROW_VM:-}" = 1 ] || { echo "run-dockerd: $dir is not under /tmp" >&2; exit 2; } ;;
    *) echo "run-dockerd: $dir is not absolute" >&2; exit 2 ;;
  esac
  mkdir -p "$NEW$dir"
  mount --rbind "$dir" "$NEW$dir"
done
# a static busybox for the one step after the pivot that the root itself has no tool for (umount)
mkdir "$NEW/run/agd" && cp /bin/busybox "$NEW/run/agd/busybox"
cd "$NEW"
/usr/sbin/pivot_root . .oldroot
exec /usr/sbin/chroot . /bin/sh -c '/run/agd/busybox umount -l /.oldroot && /run/agd/busybox rm -rf /run/agd && exec /usr/sbin/dockerd "$@"' dockerd "$@"
