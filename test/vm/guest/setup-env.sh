#!/bin/bash
# Prepares one named storage environment on the scratch disk (/dev/vdb) inside the test VM and records
# what it made in /run/autogrow-vm.env (see docs/vm.md for every variable).
#   setup-env.sh none | dm-thin-raw | docker-dm-lvm | docker-dm-loop | overlay2-xfs | btrfs
# Tunables (environment, all optional):
#   AUTOGROW_VM_LIVE_RESTORE=1          dockerd "live-restore": true (default false)
#   AUTOGROW_VM_DM_BASESIZE=1G          devicemapper dm.basesize (container device size)
#   AUTOGROW_VM_POOL_DATA_SIZE=2G       dm-thin-raw: initial pool data size (the rest of the disk is
#                                       left free so a test can grow the pool)
#   AUTOGROW_VM_LVM_POOL_PERCENT=40     docker-dm-lvm: thin pool data LV size in % of the VG
#   AUTOGROW_VM_LOOP_DATA_SIZE=4G       docker-dm-loop: dm.loopdatasize
#   AUTOGROW_VM_LOOP_METADATA_SIZE=256M docker-dm-loop: dm.loopmetadatasize
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ENVIRONMENT=${1:?environment name}
SCRATCH=/dev/vdb
DATA_ROOT=/var/lib/docker
BUSYBOX_IMAGE=autogrow-busybox:test
: >"$AUTOGROW_VM_ENV_FILE"

export_env AUTOGROW_VM 1
export_env AUTOGROW_VM_ENV "$ENVIRONMENT"
export_env AUTOGROW_SCRATCH_DEV "$SCRATCH"
export_env AUTOGROW_SCRATCH_SIZE_BYTES "$(blockdev --getsize64 $SCRATCH)"
export_env AUTOGROW_ARTIFACTS_DIR "$AUTOGROW_ARTIFACTS_DIR"
export_env AUTOGROW_DOCKERD_CTL "$HERE/dockerd-ctl.sh"

# Only the modules an environment needs: under TCG every module load costs (btrfs pulls in raid6_pq,
# which benchmarks its algorithms at load time: ~10 s). Tests load anything else themselves.
case "$ENVIRONMENT" in
  dm-thin-raw) modprobe -a dm-thin-pool dm-flakey xfs ;;
  docker-dm-lvm | docker-dm-loop) modprobe -a dm-thin-pool xfs loop ;;
  overlay2-xfs) modprobe -a xfs overlay ;;
  btrfs) modprobe -a btrfs ;;
esac

bool() { [ "${1:-0}" = 1 ] || [ "${1:-}" = true ] && echo true || echo false; }
LIVE_RESTORE=$(bool "${AUTOGROW_VM_LIVE_RESTORE:-0}")
BASESIZE=${AUTOGROW_VM_DM_BASESIZE:-1G}

# daemon.json common part: no networking (containers use --network none), explicit data root
write_daemon_json() { # $1 = storage driver, $2 = JSON array of storage-opts
  mkdir -p /etc/docker
  cat >/etc/docker/daemon.json <<EOT
{
  "data-root": "$DATA_ROOT",
  "storage-driver": "$1",
  "storage-opts": $2,
  "live-restore": $LIVE_RESTORE,
  "iptables": false,
  "ip-masq": false,
  "bridge": "none",
  "log-level": "info"
}
EOT
  export_env AUTOGROW_DOCKERD_CONFIG /etc/docker/daemon.json
}

start_docker() {
  bash "$HERE/dockerd-ctl.sh" start
  export_env DOCKER_HOST unix:///var/run/docker.sock
  export_env AUTOGROW_DATA_ROOT "$DATA_ROOT"
  # An image without a registry: a busybox-static rootfs, imported.
  import_busybox "$BUSYBOX_IMAGE"
  export_env AUTOGROW_BUSYBOX_IMAGE "$BUSYBOX_IMAGE"
  stamp "setup-env: $BUSYBOX_IMAGE imported"
}

case "$ENVIRONMENT" in
  none) ;;

  dm-thin-raw)
    # A thin pool built directly with dmsetup: metadata and data are linear slices of the scratch disk.
    # The data slice starts small so a test can grow the pool into the rest of the disk.
    META_SECTORS=131072 # 64 MiB
    BLOCK_SECTORS=128   # 64 KiB data blocks, like Docker
    DISK_SECTORS=$(blockdev --getsz $SCRATCH)
    DATA_SECTORS=$(($(numfmt --from=iec "${AUTOGROW_VM_POOL_DATA_SIZE:-2G}") / 512))
    [ $((META_SECTORS + DATA_SECTORS)) -le "$DISK_SECTORS" ] || die "scratch disk too small for the pool"
    dmsetup create agvm-meta --table "0 $META_SECTORS linear $SCRATCH 0"
    dmsetup create agvm-data --table "0 $DATA_SECTORS linear $SCRATCH $META_SECTORS"
    # a fresh pool needs zeroed metadata
    dd if=/dev/zero of=/dev/mapper/agvm-meta bs=4096 count=1 conv=fsync status=none
    LOW_WATER_BLOCKS=1024
    dmsetup create agvm-pool \
      --table "0 $DATA_SECTORS thin-pool /dev/mapper/agvm-meta /dev/mapper/agvm-data $BLOCK_SECTORS $LOW_WATER_BLOCKS"
    udevadm settle
    export_env AUTOGROW_THIN_POOL agvm-pool
    export_env AUTOGROW_THIN_POOL_META agvm-meta
    export_env AUTOGROW_THIN_POOL_DATA agvm-data
    export_env AUTOGROW_THIN_POOL_BLOCK_SECTORS $BLOCK_SECTORS
    export_env AUTOGROW_THIN_POOL_LOW_WATER_BLOCKS $LOW_WATER_BLOCKS
    export_env AUTOGROW_THIN_POOL_DATA_OFFSET_SECTORS $META_SECTORS
    export_env AUTOGROW_THIN_POOL_DATA_MAX_SECTORS $((DISK_SECTORS - META_SECTORS))
    ;;

  docker-dm-lvm)
    # Docker's documented direct-lvm layout: VG "docker", thin pool LV "thinpool" (dm name
    # docker-thinpool), the rest of the VG free so the pool can be extended.
    VG=docker
    pvcreate -q $SCRATCH
    vgcreate -q $VG $SCRATCH
    lvcreate -q -y --wipesignatures y -n thinpool $VG -l "${AUTOGROW_VM_LVM_POOL_PERCENT:-40}%VG"
    lvcreate -q -y --wipesignatures y -n thinpoolmeta $VG -l 1%VG
    lvconvert -q -y --zero n -c 512K --thinpool $VG/thinpool --poolmetadata $VG/thinpoolmeta
    udevadm settle
    export_env AUTOGROW_VG $VG
    export_env AUTOGROW_THIN_LV thinpool
    export_env AUTOGROW_THIN_POOL docker-thinpool
    write_daemon_json devicemapper "[\"dm.thinpooldev=/dev/mapper/docker-thinpool\", \
\"dm.use_deferred_removal=true\", \"dm.use_deferred_deletion=true\", \"dm.basesize=$BASESIZE\"]"
    start_docker
    ;;

  docker-dm-loop)
    # Docker's default devicemapper mode: sparse loop files under the data root (on XFS here).
    mkfs.xfs -q -f $SCRATCH
    mkdir -p $DATA_ROOT
    mount $SCRATCH $DATA_ROOT
    write_daemon_json devicemapper "[\"dm.loopdatasize=${AUTOGROW_VM_LOOP_DATA_SIZE:-4G}\", \
\"dm.loopmetadatasize=${AUTOGROW_VM_LOOP_METADATA_SIZE:-256M}\", \"dm.basesize=$BASESIZE\"]"
    start_docker
    export_env AUTOGROW_THIN_POOL "$(dmsetup ls --target thin-pool | awk 'NR==1{print $1}')"
    ;;

  overlay2-xfs)
    mkfs.xfs -q -f $SCRATCH
    mkdir -p $DATA_ROOT
    mount -o pquota $SCRATCH $DATA_ROOT
    export_env AUTOGROW_XFS_DEV $SCRATCH
    export_env AUTOGROW_XFS_MOUNT $DATA_ROOT
    write_daemon_json overlay2 '[]'
    start_docker
    ;;

  btrfs)
    mkfs.btrfs -q -f $SCRATCH
    mkdir -p $DATA_ROOT
    mount $SCRATCH $DATA_ROOT
    export_env AUTOGROW_BTRFS_DEV $SCRATCH
    export_env AUTOGROW_BTRFS_MOUNT $DATA_ROOT
    write_daemon_json btrfs '[]'
    start_docker
    ;;

  *) die "unknown environment '$ENVIRONMENT'" ;;
esac
stamp "setup-env: $ENVIRONMENT ready"
