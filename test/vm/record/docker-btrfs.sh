#!/bin/bash
# environment: btrfs
# Docker's btrfs driver on a real btrfs scratch disk: docker info / inspect JSON, qgroups (raw, batch
# friendly), subvolume list, Docker's quota files. Fixture files: test/fixtures/docker-btrfs/.
# (test/fixtures/btrfs/ holds recordings made on the host by the btrfs backend's own tests.)
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
IMAGE=$AUTOGROW_BUSYBOX_IMAGE
ROOT=$AUTOGROW_BTRFS_MOUNT

rec versions/btrfs-version.txt btrfs --version
rec docker/info.json docker info --format '{{json .}}'
rec docker/info.txt docker info
docker run -d --name limited --network none --storage-opt size=100M "$IMAGE" sleep 100000 >/dev/null
docker run -d --name unlimited --network none "$IMAGE" sleep 100000 >/dev/null
docker exec limited dd if=/dev/zero of=/fill bs=1M count=30 status=none
sync
rec docker/inspect-running.json docker inspect limited unlimited
rec btrfs/qgroup-show-raw.txt btrfs qgroup show --raw -re "$ROOT"
rec btrfs/qgroup-show-raw-sync.txt btrfs qgroup show --raw -re --sync "$ROOT"
rec btrfs/subvolume-list.txt btrfs subvolume list "$ROOT"
rec btrfs/quota-files.txt sh -c "cd $ROOT/btrfs/quotas && for f in *; do printf '%s %s\n' \"\$f\" \"\$(cat \"\$f\")\"; done"
rec btrfs/filesystem-show.txt btrfs filesystem show "$ROOT"
rec btrfs/filesystem-usage-raw.txt btrfs filesystem usage -b "$ROOT"
rec fs/findmnt-data-root.json findmnt -J -b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL "$ROOT"
rec fs/blkid-scratch.txt blkid -o export "$AUTOGROW_BTRFS_DEV"
