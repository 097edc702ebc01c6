#!/bin/bash
# environment: dm-thin-raw
# Raw device-mapper thin provisioning: pool and thin device status/table/info in every pool mode the
# kernel has (rw, out_of_data_space, ro, ro + needs_check, Fail), an online thin-device grow, pool
# events. Fixture files: test/fixtures/dm-thin/.
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
POOL=$AUTOGROW_THIN_POOL
DEV=$AUTOGROW_SCRATCH_DEV
SECTORS_PER_MIB=2048

rec version.txt dmsetup version
rec thin-tools-version.txt thin_check -V

# ---- the harness's pool, fresh --------------------------------------------------------------------
rec pool/status-fresh.txt dmsetup status "$POOL"
rec pool/table.txt dmsetup table "$POOL"
rec pool/info.txt dmsetup info "$POOL"

# ---- two thin devices, one with data -------------------------------------------------------------
dmsetup message "$POOL" 0 "create_thin 0"
dmsetup message "$POOL" 0 "create_thin 1"
dmsetup create agvm-thin0 --table "0 $((1024 * SECTORS_PER_MIB)) thin /dev/mapper/$POOL 0"
dmsetup create agvm-thin1 --table "0 $((1024 * SECTORS_PER_MIB)) thin /dev/mapper/$POOL 1"
rec thin/status-unwritten.txt dmsetup status agvm-thin1
mkfs.xfs -q /dev/mapper/agvm-thin0
mkdir -p /mnt/thin0
mount /dev/mapper/agvm-thin0 /mnt/thin0
dd if=/dev/zero of=/mnt/thin0/data bs=1M count=100 conv=fsync status=none
rec thin/status.txt dmsetup status agvm-thin0
rec thin/table.txt dmsetup table agvm-thin0
rec thin/info.txt dmsetup info agvm-thin0
rec pool/status-rw.txt dmsetup status "$POOL"
rec all/status.txt dmsetup status
rec all/table.txt dmsetup table
rec all/info-columns.txt dmsetup info -c --noheadings --separator ';' \
  -o name,major,minor,attr,open,segments,events,uuid
rec all/info-columns-header.txt dmsetup info -c
rec all/ls-target-thin-pool.txt dmsetup ls --target thin-pool
rec all/status-target-thin-pool.txt dmsetup status --target thin-pool
rec all/status-target-thin.txt dmsetup status --target thin
rec all/ls-tree.txt dmsetup ls --tree
rec all/deps-thin0.txt dmsetup deps -o devname agvm-thin0
rec all/findmnt.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL /mnt/thin0
rec all/blkid-thin0.txt blkid -o export /dev/mapper/agvm-thin0
rec all/lsblk.json lsblk -J -b -o NAME,KNAME,TYPE,SIZE,MAJ:MIN,MOUNTPOINT "$DEV"

# ---- online grow of a thin device (1 GiB -> 3 GiB) + xfs_growfs -----------------------------------
NEW_TABLE=$(dmsetup table agvm-thin0 | awk -v n=$((3072 * SECTORS_PER_MIB)) '{$2=n; print}')
dmsetup load agvm-thin0 --table "$NEW_TABLE"
rec grow/info-live-and-inactive.txt dmsetup info agvm-thin0
rec grow/table-inactive.txt dmsetup table --inactive agvm-thin0
dmsetup resume agvm-thin0
rec grow/table-after.txt dmsetup table agvm-thin0
rec grow/xfs-growfs.txt xfs_growfs /mnt/thin0
rec grow/blockdev-getsize64.txt blockdev --getsize64 /dev/mapper/agvm-thin0
dmsetup suspend agvm-thin0
rec grow/info-suspended.txt dmsetup info agvm-thin0
dmsetup resume agvm-thin0
umount /mnt/thin0

# ---- small pools for the other modes, on free parts of the scratch disk -----------------------------
# mini_pool <name> <offset MiB> <features...>: 8 MiB metadata + 64 MiB data, one 512 MiB thin device
mini_pool() {
  local name=$1 offset=$(($2 * SECTORS_PER_MIB))
  shift 2
  local meta=$((8 * SECTORS_PER_MIB)) data=$((64 * SECTORS_PER_MIB)) features=""
  [ $# -gt 0 ] && features="$# $*"
  dmsetup create "$name-meta" --table "0 $meta linear $DEV $offset"
  dmsetup create "$name-data" --table "0 $data linear $DEV $((offset + meta))"
  dd if=/dev/zero of="/dev/mapper/$name-meta" bs=4096 count=1 conv=fsync status=none
  dmsetup create "$name" --table "0 $data thin-pool /dev/mapper/$name-meta /dev/mapper/$name-data 128 256 $features"
  dmsetup message "$name" 0 "create_thin 0"
  dmsetup create "$name-thin" --table "0 $((512 * SECTORS_PER_MIB)) thin /dev/mapper/$name 0"
}
BASE_MIB=3072 # past the harness pool (64 MiB metadata + 2 GiB data)

# out_of_data_space: error_if_no_space makes the writer get ENOSPC instead of queueing for 60 s
mini_pool agvm-full $BASE_MIB error_if_no_space
rec pool/table-error_if_no_space.txt dmsetup table agvm-full
rec pool/events-before-low-water.txt dmsetup info -c --noheadings --separator ';' -o name,events agvm-full
rec_fail pool/dd-out-of-space.txt dd if=/dev/zero of=/dev/mapper/agvm-full-thin bs=1M count=100 oflag=direct
rec pool/status-out_of_data_space.txt dmsetup status agvm-full
rec thin/status-on-full-pool.txt dmsetup status agvm-full-thin
rec pool/events-after-low-water.txt dmsetup info -c --noheadings --separator ';' -o name,events agvm-full
note pool/status-out_of_data_space.txt "pool of 64 MiB data (1024 blocks of 64 KiB), error_if_no_space, after writing 100 MiB to a 512 MiB thin device"

# ro: a pool table loaded with the read_only feature
mini_pool agvm-ro $((BASE_MIB + 128))
dd if=/dev/zero of=/dev/mapper/agvm-ro-thin bs=1M count=8 oflag=direct status=none
dmsetup remove agvm-ro-thin
dmsetup suspend agvm-ro
dmsetup load agvm-ro --table "0 $((64 * SECTORS_PER_MIB)) thin-pool /dev/mapper/agvm-ro-meta /dev/mapper/agvm-ro-data 128 256 1 read_only"
dmsetup resume agvm-ro
rec pool/table-read_only.txt dmsetup table agvm-ro
rec pool/status-ro.txt dmsetup status agvm-ro

# needs_check: metadata writes start failing (dm-flakey error_writes) while data is being provisioned;
# the kernel aborts the metadata transaction, flags the metadata as needing a check, goes read-only.
mini_pool agvm-nc $((BASE_MIB + 256))
dmsetup suspend agvm-nc-meta
dmsetup load agvm-nc-meta --table "0 $((8 * SECTORS_PER_MIB)) flakey $DEV $(((BASE_MIB + 256) * SECTORS_PER_MIB)) 0 1 1 error_writes"
dmsetup resume agvm-nc-meta
dd if=/dev/zero of=/dev/mapper/agvm-nc-thin bs=1M count=8 oflag=direct status=none || true
sync
sleep 2
if dmsetup status agvm-nc | grep -q needs_check; then
  rec pool/status-needs_check.txt dmsetup status agvm-nc
  note pool/status-needs_check.txt "metadata device switched to dm-flakey error_writes, then 8 MiB written to a thin device"
else
  rec pool/status-after-metadata-write-errors.txt dmsetup status agvm-nc
  note pool/status-after-metadata-write-errors.txt "needs_check was NOT produced: metadata writes failing (dm-flakey error_writes) gave this status"
fi
rec thin/status-on-ro-pool.txt dmsetup status agvm-nc-thin

# Fail: the metadata device becomes an error target; the transaction abort cannot re-read it.
mini_pool agvm-fail $((BASE_MIB + 384))
dmsetup suspend agvm-fail-meta
dmsetup load agvm-fail-meta --table "0 $((8 * SECTORS_PER_MIB)) error"
dmsetup resume agvm-fail-meta
dd if=/dev/zero of=/dev/mapper/agvm-fail-thin bs=1M count=8 oflag=direct status=none || true
sync
sleep 2
if dmsetup status agvm-fail | grep -q ' Fail'; then
  rec pool/status-Fail.txt dmsetup status agvm-fail
  note pool/status-Fail.txt "metadata device replaced by an error target, then 8 MiB written to a thin device"
else
  rec pool/status-after-metadata-errors.txt dmsetup status agvm-fail
  note pool/status-after-metadata-errors.txt "Fail was NOT produced: metadata replaced by an error target gave this status"
fi
rec thin/status-on-failed-pool.txt dmsetup status agvm-fail-thin
rec pool/dmesg-modes.txt sh -c "dmesg | grep -E 'device-mapper|thin' | sed -E 's/^\[ *[0-9.]+\] //'"

# last, because it is the step most likely to block: a metadata snapshot for thin_ls on the live pool
dmsetup message "$POOL" 0 reserve_metadata_snap
rec pool/status-held-metadata-snap.txt dmsetup status "$POOL"
rec pool/thin-ls.txt thin_ls --metadata-snap -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_BYTES \
  "/dev/mapper/$AUTOGROW_THIN_POOL_META"
dmsetup message "$POOL" 0 release_metadata_snap

