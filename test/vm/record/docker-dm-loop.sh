#!/bin/bash
# environment: docker-dm-loop
# Docker devicemapper in its default loop-lvm mode (sparse data/metadata files on loop devices):
# docker info / inspect JSON, the pool and container devices, the loop devices.
# Fixture files: test/fixtures/docker-dm-loop/.
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
IMAGE=$AUTOGROW_BUSYBOX_IMAGE
POOL=$AUTOGROW_THIN_POOL

rec docker/info.json docker info --format '{{json .}}'
rec docker/info.txt docker info
docker run -d --name plain --network none "$IMAGE" sleep 100000 >/dev/null
docker exec plain dd if=/dev/zero of=/fill bs=1M count=100 status=none
docker exec plain sync
rec docker/inspect-running.json docker inspect plain
DEV=$(docker inspect -f '{{.GraphDriver.Data.DeviceName}}' plain)
HASH=${DEV##*-}
rec dm/status-all.txt dmsetup status
rec dm/table-all.txt dmsetup table
rec dm/info-columns.txt dmsetup info -c --noheadings --separator ';' \
  -o name,major,minor,attr,open,segments,events,uuid
rec dm/pool-status.txt dmsetup status "$POOL"
rec dm/pool-table.txt dmsetup table "$POOL"
rec dm/pool-info.txt dmsetup info "$POOL"
rec dm/container-status.txt dmsetup status "$DEV"
rec dm/container-table.txt dmsetup table "$DEV"
rec loop/losetup.json losetup -J -l
rec loop/files.txt ls -ls /var/lib/docker/devicemapper/devicemapper
rec metadata/container-device.json cat "/var/lib/docker/devicemapper/metadata/$HASH"
rec metadata/deviceset-metadata.json cat /var/lib/docker/devicemapper/metadata/deviceset-metadata
rec fs/findmnt-data-root.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL /var/lib/docker
rec fs/blkid-scratch.txt blkid -o export "$AUTOGROW_SCRATCH_DEV"
