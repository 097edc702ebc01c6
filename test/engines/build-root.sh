#!/bin/bash
# Builds (or reuses) a root filesystem holding a current Docker Engine from a Debian suite, for
# test/support/engine-root.ts to run dockerd from in its own mount namespace (never installed on the host,
# never through the host's apt sources: mmdebstrap gets the suite and mirror on its command line).
#   sid     docker.io 28.5.x + docker-cli
#   trixie  docker.io 26.1.x (+ docker-cli)
# The root lives OUTSIDE the checkout, in
#   ${AUTOGROW_ENGINES_CACHE:-/var/cache/docker-autogrow-engines}/<recipe-hash>/root
# where <recipe-hash> covers this script's content (not its path) and the engine's name, so CI and later sessions on this machine
# reuse it and a changed recipe builds a new one.
#
# Usage: test/engines/build-root.sh <sid|trixie> [--print-dir]
# Last line of output: `AUTOGROW_ENGINE_ROOT_<ENGINE>=<dir>/root built=<0|1> seconds=<n> version=<dockerd version>`.
# Needs root and network access to deb.debian.org. Concurrent callers serialise on a lock.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${AUTOGROW_ENGINES_CACHE:-/var/cache/docker-autogrow-engines}
ENGINE=${1:?usage: build-root.sh <sid|trixie> [--print-dir]}
MIRROR=${AUTOGROW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
case "$ENGINE" in
  sid)
    SUITE=sid
    PACKAGES=docker.io,docker-cli
    # sid's Release file is regularly past its Valid-Until date
    APTOPTS=(--aptopt='Acquire::Check-Valid-Until "false"')
    ;;
  trixie)
    SUITE=trixie
    PACKAGES=docker.io,docker-cli
    APTOPTS=()
    ;;
  *) echo "build-root: unknown engine $ENGINE (sid|trixie)" >&2; exit 2 ;;
esac

HASH=$({ sha256sum <"$HERE/build-root.sh"; echo "$ENGINE $MIRROR"; } | sha256sum | cut -c1-16)
DIR=$CACHE/$ENGINE-$HASH
UPPER=$(echo "$ENGINE" | tr a-z A-Z)
if [ "${2:-}" = --print-dir ]; then echo "$DIR/root"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "build-root: must run as root" >&2; exit 1; }
t0=$(date +%s)
mkdir -p "$CACHE"
exec 9>"$CACHE/$ENGINE-$HASH.lock"
flock 9
if [ ! -e "$DIR/complete" ]; then
  echo "build-root: building $ENGINE ($SUITE: $PACKAGES) into $DIR"
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # essential + the engine: apt runs outside the root, with its own sources list for $SUITE only
  mmdebstrap --quiet --variant=essential --include="$PACKAGES,ca-certificates" "${APTOPTS[@]}" \
    "$SUITE" "$DIR/root" "deb $MIRROR $SUITE main"
  rm -rf "$DIR/root/var/cache/apt/archives/"*.deb "$DIR/root/var/lib/apt/lists/"*
  # mount points the runner binds into (engine-root.ts)
  mkdir -p "$DIR/root/.oldroot" "$DIR/root/proc" "$DIR/root/sys" "$DIR/root/dev" "$DIR/root/run" "$DIR/root/tmp"
  chroot "$DIR/root" /usr/sbin/dockerd --version > "$DIR/dockerd-version"
  chroot "$DIR/root" /usr/bin/docker --version > "$DIR/docker-version" 2>/dev/null || true
  touch "$DIR/complete"
  built=1
else
  echo "build-root: reusing $DIR"
  built=0
fi
echo "AUTOGROW_ENGINE_ROOT_$UPPER=$DIR/root built=$built seconds=$(( $(date +%s) - t0 )) version=\"$(cat "$DIR/dockerd-version")\""
