#!/bin/bash
# Builds (or reuses) a Debian sid root holding podman (5.x) for test/engines/run-podman.sh, to measure
# what Podman's Docker-compatible API gives the agent (docs/engines.md "Podman"). Never installed on the
# host, never through the host's apt sources: mmdebstrap gets the suite and mirror on its command line.
# The root lives OUTSIDE the checkout, in
#   ${AUTOGROW_ENGINES_CACHE:-/var/cache/docker-autogrow-engines}/podman-<recipe-hash>/root
# where <recipe-hash> covers this script's content and the mirror. A separate script from build-root.sh
# on purpose: that script's content keys CI's cached docker roots.
#
# Usage: test/engines/podman-root.sh [--print-dir]
# Last line: `AUTOGROW_PODMAN_ROOT=<dir>/root built=<0|1> seconds=<n> version="<podman --version>"`.
# Needs root and network access to deb.debian.org. Concurrent callers serialise on a lock.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${AUTOGROW_ENGINES_CACHE:-/var/cache/docker-autogrow-engines}
MIRROR=${AUTOGROW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# podman pulls crun, conmon, netavark/aardvark-dns and containers-common by dependency; btrfs-progs
# is for the btrfs storage driver; catatonit for --init; runc because crun refuses a host with hybrid
# cgroups ("crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2")
PACKAGES=podman,crun,runc,conmon,netavark,btrfs-progs,iptables,catatonit,ca-certificates
HASH=$({ sha256sum <"$HERE/podman-root.sh"; echo "podman sid $MIRROR"; } | sha256sum | cut -c1-16)
DIR=$CACHE/podman-$HASH
if [ "${1:-}" = --print-dir ]; then echo "$DIR/root"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "podman-root: must run as root" >&2; exit 1; }
t0=$(date +%s)
mkdir -p "$CACHE"
exec 9>"$CACHE/podman-$HASH.lock"
flock 9
if [ ! -e "$DIR/complete" ]; then
  echo "podman-root: building sid ($PACKAGES) into $DIR"
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # sid's Release file is regularly past its Valid-Until date
  mmdebstrap --quiet --variant=essential --include="$PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    sid "$DIR/root" "deb $MIRROR sid main"
  rm -rf "$DIR/root/var/cache/apt/archives/"*.deb "$DIR/root/var/lib/apt/lists/"*
  # mount points run-podman.sh binds into
  mkdir -p "$DIR/root/.oldroot" "$DIR/root/proc" "$DIR/root/sys" "$DIR/root/dev" "$DIR/root/run" "$DIR/root/tmp"
  # the package's version (podman itself refuses to run without /proc: "cannot retrieve cmd line")
  chroot "$DIR/root" /usr/bin/dpkg-query -W -f='podman ${Version}\n' podman > "$DIR/podman-version"
  touch "$DIR/complete"
  built=1
else
  echo "podman-root: reusing $DIR"
  built=0
fi
echo "AUTOGROW_PODMAN_ROOT=$DIR/root built=$built seconds=$(( $(date +%s) - t0 )) version=\"$(cat "$DIR/podman-version")\""
