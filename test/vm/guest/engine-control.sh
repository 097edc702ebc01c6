#!/bin/bash
# The rig's control, against whatever dockerd answers on DOCKER_HOST (engine-use.sh selects it): a
# container created with --storage-opt size=64M must FAIL to write 200 MiB, its writes must land in
# its own writable layer under the data root, and a file it creates in its / must not appear in the
# guest's / (the plain-chroot trap: containers ran on the outer root, so a quota "passed" with none).
# Prints `CONTROL PASSED: <server version> <driver>` and exits 0, or says what failed and exits 1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
image=${AUTOGROW_BUSYBOX_IMAGE:-autogrow-busybox:test}
marker=autogrow-control-$$-$RANDOM
version=$(docker version -f '{{.Server.Version}}') || die "control: no dockerd"
driver=$(docker info -f '{{.Driver}}')
id=$(docker run -d --network none --storage-opt size=64M "$image" sleep 1d) || die "control: cannot run a 64M container"
fail=0
docker exec "$id" touch "/$marker"
upper=$(docker inspect -f '{{.GraphDriver.Data.UpperDir}}' "$id")
if [ -e "/$marker" ]; then echo "control: /$marker appeared in the guest's / (container on the outer root)" >&2; fail=1; fi
if [ -z "$upper" ] || [ ! -e "$upper/$marker" ]; then echo "control: /$marker not in the writable layer '$upper'" >&2; fail=1; fi
out=$(docker exec "$id" sh -c 'dd if=/dev/zero of=/big bs=1M count=200 2>&1 && echo WROTE-ALL' 2>&1)
echo "control: dd in the 64M container: $(echo "$out" | tr '\n' ' ')"
case "$out" in
  *WROTE-ALL*) echo "control: the 64M container wrote 200 MiB (no quota)" >&2; fail=1 ;;
  *"No space left"*) ;;
  *) echo "control: dd failed without ENOSPC" >&2; fail=1 ;;
esac
written=$(stat -c %s "$upper/big" 2>/dev/null || echo 0)
echo "control: /big in the writable layer: $written bytes"
[ "$written" -le $((64 * 1024 * 1024)) ] || { echo "control: wrote more than 64 MiB" >&2; fail=1; }
docker rm -f "$id" >/dev/null
rm -f "/$marker"
[ $fail = 0 ] || exit 1
echo "CONTROL PASSED: $version $driver"
