#!/bin/bash
# environment: docker-dm-lvm
# Docker devicemapper, direct-lvm (dm.thinpooldev on LVM thin pool docker/thinpool): LVM JSON reports,
# the pool and container devices through dmsetup, docker info / inspect JSON, Docker's per-device
# metadata files, an LVM pool extension. Fixture files: test/fixtures/docker-dm-lvm/.
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
IMAGE=$AUTOGROW_BUSYBOX_IMAGE
LVS_FIELDS=lv_name,vg_name,lv_attr,lv_size,data_percent,metadata_percent,lv_metadata_size,pool_lv,segtype,chunk_size,lv_uuid
VGS_FIELDS=vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,vg_uuid

rec versions/lvm-version.txt lvm version
rec versions/dmsetup-version.txt dmsetup version
rec versions/docker-version.json docker version --format '{{json .}}'

rec lvm/lvs-thinpool.json lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" docker/thinpool
rec lvm/lvs-all.json lvs -a --reportformat json --units b --nosuffix -o "$LVS_FIELDS" docker
rec lvm/vgs.json vgs --reportformat json --units b --nosuffix -o "$VGS_FIELDS" docker
rec lvm/pvs.json pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,pv_free

rec docker/info.json docker info --format '{{json .}}'
rec docker/info.txt docker info

docker run -d --name plain --network none "$IMAGE" sleep 100000 >/dev/null
docker run -d --name sized --network none --storage-opt size=2G "$IMAGE" sleep 100000 >/dev/null
docker exec plain dd if=/dev/zero of=/fill bs=1M count=200 status=none
docker exec plain sync
rec docker/inspect-running.json docker inspect plain sized
rec docker/ps-size.txt docker ps -s --no-trunc

DEV=$(docker inspect -f '{{.GraphDriver.Data.DeviceName}}' plain)
HASH=${DEV##*-}
MNT=/var/lib/docker/devicemapper/mnt/$HASH
rec dm/status-all.txt dmsetup status
rec dm/table-all.txt dmsetup table
rec dm/info-columns.txt dmsetup info -c --noheadings --separator ';' \
  -o name,major,minor,attr,open,segments,events,uuid
rec dm/status-target-thin-pool.txt dmsetup status --target thin-pool
rec dm/status-target-thin.txt dmsetup status --target thin
rec dm/pool-status.txt dmsetup status docker-thinpool
rec dm/pool-table.txt dmsetup table docker-thinpool
rec dm/pool-info.txt dmsetup info docker-thinpool
rec dm/container-status.txt dmsetup status "$DEV"
rec dm/container-table.txt dmsetup table "$DEV"
rec dm/container-info.txt dmsetup info "$DEV"
rec dm/ls-tree.txt dmsetup ls --tree
rec metadata/container-device.json cat "/var/lib/docker/devicemapper/metadata/$HASH"
rec metadata/deviceset-metadata.json cat /var/lib/docker/devicemapper/metadata/deviceset-metadata
rec metadata/transaction-metadata.json cat /var/lib/docker/devicemapper/metadata/transaction-metadata
rec metadata/base-device.json cat /var/lib/docker/devicemapper/metadata/base
rec fs/findmnt-container.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL "$MNT"
rec fs/findmnt-devicemapper.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL -t xfs
rec fs/blkid-container.txt blkid -o export "/dev/mapper/$DEV"
rec fs/xfs-info-container.txt xfs_info "$MNT"
rec fs/df-container.txt df -B1 --output=source,fstype,size,used,avail,target "$MNT"

# a stopped container has no device (Docker removes it at stop)
docker stop -t 1 plain >/dev/null
rec docker/inspect-stopped.json docker inspect plain
rec dm/ls-after-stop.txt dmsetup ls

# extending the thin pool through LVM (what the pool grower does on direct-lvm)
rec lvm/lvextend.txt lvextend -L +512M docker/thinpool
rec lvm/lvs-thinpool-extended.json lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" docker/thinpool
rec dm/pool-status-extended.txt dmsetup status docker-thinpool
rec dm/pool-table-extended.txt dmsetup table docker-thinpool
