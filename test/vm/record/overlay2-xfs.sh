#!/bin/bash
# environment: overlay2-xfs
# Docker overlay2 on XFS mounted with pquota: per-container project ids (xfs_io lsproj), batch quota
# reports (xfs_quota report -p -b -N -n), one project's quota, a limit raised online, a container at
# its limit. Fixture files: test/fixtures/overlay2-xfs/.
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
IMAGE=$AUTOGROW_BUSYBOX_IMAGE
ROOT=$AUTOGROW_XFS_MOUNT

rec versions/xfs_quota-version.txt xfs_quota -V
rec versions/docker-version.json docker version --format '{{json .}}'
rec docker/info.json docker info --format '{{json .}}'
rec docker/info.txt docker info

docker run -d --name limited --network none --storage-opt size=100M "$IMAGE" sleep 100000 >/dev/null
docker run -d --name unlimited --network none "$IMAGE" sleep 100000 >/dev/null
docker exec limited dd if=/dev/zero of=/fill bs=1M count=40 status=none
docker exec limited sync
rec docker/inspect-running.json docker inspect limited unlimited
UPPER=$(docker inspect -f '{{.GraphDriver.Data.UpperDir}}' limited)
LAYER_DIR=${UPPER%/diff}
rec xfs/lsproj-layer-dir.txt xfs_io -c lsproj "$LAYER_DIR"
rec xfs/lsproj-upper-dir.txt xfs_io -c lsproj "$UPPER"
UNLIMITED_UPPER=$(docker inspect -f '{{.GraphDriver.Data.UpperDir}}' unlimited)
rec xfs/lsproj-unlimited-layer-dir.txt xfs_io -c lsproj "${UNLIMITED_UPPER%/diff}"
PROJECT=$(xfs_io -c lsproj "$LAYER_DIR" | awk -F'= ' '{print $2}')

rec xfs/report-batch.txt xfs_quota -x -c 'report -p -b -N -n' "$ROOT"
rec xfs/report-with-header.txt xfs_quota -x -c 'report -p -b -n' "$ROOT"
rec xfs/report-batch-inodes.txt xfs_quota -x -c 'report -p -b -i -N -n' "$ROOT"
rec xfs/quota-project.txt xfs_quota -x -c "quota -p -b -N -n $PROJECT" "$ROOT"
rec xfs/state.txt xfs_quota -x -c 'state -p' "$ROOT"
rec xfs/limit-raise.txt xfs_quota -x -c "limit -p bsoft=0 bhard=200m $PROJECT" "$ROOT"
rec xfs/report-batch-after-raise.txt xfs_quota -x -c 'report -p -b -N -n' "$ROOT"

# a container writing past its limit: ENOSPC inside, the report shows used == hard
docker exec limited sh -c 'dd if=/dev/zero of=/fill2 bs=1M count=300 2>&1; sync' >/dev/null || true
rec xfs/report-batch-at-limit.txt xfs_quota -x -c 'report -p -b -N -n' "$ROOT"
rec_fail docker/exec-write-at-limit.txt docker exec limited dd if=/dev/zero of=/fill3 bs=1M count=10

rec fs/findmnt-data-root.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL "$ROOT"
rec fs/findmnt-overlay.json findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS -t overlay
rec fs/blkid-scratch.txt blkid -o export "$AUTOGROW_XFS_DEV"
rec fs/xfs-info.txt xfs_info "$ROOT"
rec fs/df-data-root.txt df -B1 --output=source,fstype,size,used,avail,target "$ROOT"
