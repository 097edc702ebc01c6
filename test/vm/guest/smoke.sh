#!/bin/bash
# Smoke check of the environment the harness prepared (run by test/vm/smoke.test.ts inside the VM).
# Prints the real command outputs (the host asserts on them too) and fails on the first broken promise.
# Plain bash rather than vitest: under TCG vitest's start-up alone costs a minute, and this runs once
# per environment in CI.
set -euo pipefail
. "$AUTOGROW_SRC/test/vm/guest/lib.sh"
. "$AUTOGROW_VM_ENV_FILE"

show() { # print "$ cmd" and its output, return its output via $OUT
  echo "\$ $*"
  OUT=$("$@")
  echo "$OUT"
}
expect_match() { # <text> <extended regex> <what>
  if ! grep -Eq -- "$2" <<<"$1"; then
    echo "SMOKE FAIL: $3 (no match for /$2/)" >&2
    exit 1
  fi
  echo "smoke ok: $3"
}
POOL_STATUS='^0 [0-9]+ thin-pool [0-9]+ [0-9]+/[0-9]+ [0-9]+/[0-9]+ \S+ rw (no_)?discard_passdown (queue|error)_if_no_space'
used_data_blocks() { awk '{split($6, a, "/"); print a[1]}' <<<"$1"; }

docker_checks() { # <driver>
  show docker info
  expect_match "$OUT" "Storage Driver: $1" "docker info shows the $1 driver"
  show docker info --format '{{json .}}'
  [ "$(jq -r .Driver <<<"$OUT")" = "$1" ] || { echo "SMOKE FAIL: JSON Driver != $1" >&2; exit 1; }
}

case "$AUTOGROW_VM_ENV" in
  dm-thin-raw)
    show dmsetup status "$AUTOGROW_THIN_POOL"
    expect_match "$OUT" "$POOL_STATUS" "thin pool $AUTOGROW_THIN_POOL is live (rw)"
    before=$(used_data_blocks "$OUT")
    dmsetup message "$AUTOGROW_THIN_POOL" 0 "create_thin 0"
    dmsetup create agvm-smoke --table "0 2097152 thin /dev/mapper/$AUTOGROW_THIN_POOL 0"
    mkfs.xfs -q /dev/mapper/agvm-smoke
    dd if=/dev/zero of=/dev/mapper/agvm-smoke bs=1M count=32 seek=64 oflag=direct status=none
    show dmsetup status agvm-smoke
    expect_match "$OUT" '^0 2097152 thin [0-9]+ [0-9]+' "thin device maps written blocks"
    show dmsetup status "$AUTOGROW_THIN_POOL"
    after=$(used_data_blocks "$OUT")
    [ "$after" -gt "$before" ] || { echo "SMOKE FAIL: pool data use did not grow ($before -> $after)" >&2; exit 1; }
    echo "smoke ok: pool data blocks $before -> $after"
    dmsetup remove agvm-smoke
    ;;

  docker-dm-lvm)
    docker_checks devicemapper
    expect_match "$OUT" '"Pool Name","docker-thinpool"' "Docker uses the LVM thin pool"
    show lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,data_percent,segtype "$AUTOGROW_VG"
    [ "$(jq -r '.report[0].lv[] | select(.lv_name == "thinpool") | .segtype' <<<"$OUT")" = thin-pool ] ||
      { echo "SMOKE FAIL: no thin-pool LV" >&2; exit 1; }
    show docker run --rm --network none "$AUTOGROW_BUSYBOX_IMAGE" df -k /
    expect_match "$OUT" '^/dev/mapper/docker-[0-9]+:[0-9]+-[0-9]+-[0-9a-f]+(\s|$)' "container rootfs is a thin device"
    show dmsetup status docker-thinpool
    expect_match "$OUT" "$POOL_STATUS" "docker-thinpool is live (rw)"
    ;;

  docker-dm-loop)
    docker_checks devicemapper
    expect_match "$OUT" '"Data loop file","/var/lib/docker/devicemapper/devicemapper/data"' "loop-lvm data file"
    show losetup -l
    show docker run --rm --network none "$AUTOGROW_BUSYBOX_IMAGE" df -k /
    expect_match "$OUT" '^/dev/mapper/docker-[0-9]+:[0-9]+-[0-9]+-[0-9a-f]+(\s|$)' "container rootfs is a thin device"
    show dmsetup status "$AUTOGROW_THIN_POOL"
    expect_match "$OUT" "$POOL_STATUS" "Docker's loop pool $AUTOGROW_THIN_POOL is live (rw)"
    ;;

  overlay2-xfs)
    docker_checks overlay2
    expect_match "$OUT" '"Backing Filesystem","xfs"' "overlay2 backed by xfs"
    show findmnt -J -o TARGET,FSTYPE,OPTIONS "$AUTOGROW_XFS_MOUNT"
    expect_match "$OUT" '"fstype": ?"xfs"' "data root is xfs"
    expect_match "$OUT" 'prjquota' "mounted with project quota"
    # a 64 MiB limit: writing 100 MiB fails with ENOSPC inside the container
    show docker run --rm --network none --storage-opt size=64M "$AUTOGROW_BUSYBOX_IMAGE" \
      sh -c 'df -k / | tail -1; dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo "dd rc=$?"'
    expect_match "$OUT" 'No space left on device' "the per-container quota stops the writer"
    expect_match "$OUT" 'dd rc=1' "dd failed at the limit"
    show xfs_quota -x -c 'report -p -b -N -n' "$AUTOGROW_XFS_MOUNT"
    ;;

  btrfs)
    docker_checks btrfs
    show docker run --rm --network none "$AUTOGROW_BUSYBOX_IMAGE" df -k /
    ;;

  *) die "smoke: nothing to check for '$AUTOGROW_VM_ENV'" ;;
esac
echo "SMOKE PASSED: $AUTOGROW_VM_ENV"
