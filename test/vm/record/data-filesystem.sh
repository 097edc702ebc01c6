#!/bin/bash
# environment: none
# The filesystem under Docker's data root on LVM: one VG on the scratch disk, one LV each with ext4,
# XFS and btrfs, mounted; the cheap reads the data-filesystem look uses (mountinfo, sysfs dm/name,
# dm/uuid, size), the ONE lvs call per look (LV and VG fields together), vgs/pvs, an lvextend and
# each filesystem's online grow, and an lvextend the VG cannot satisfy.
# Fixture files: test/fixtures/data-filesystem/.
. "$AUTOGROW_SRC/test/vm/record/lib.sh"
set -euo pipefail
modprobe -a dm-mod xfs btrfs
VG=agdata
LVS_FIELDS=lv_name,vg_name,lv_uuid,lv_attr,lv_size,segtype,lv_kernel_major,lv_kernel_minor,vg_size,vg_free,vg_extent_size
pvcreate -q "$AUTOGROW_SCRATCH_DEV"
vgcreate -q "$VG" "$AUTOGROW_SCRATCH_DEV"
for fs in ext4 xfs btrfs; do
  lvcreate -q -y --wipesignatures y -n "data-$fs" -L 1G "$VG"
done
udevadm settle
mkfs.ext4 -q -F /dev/$VG/data-ext4
mkfs.xfs -q -f /dev/$VG/data-xfs
mkfs.btrfs -q -f /dev/$VG/data-btrfs
for fs in ext4 xfs btrfs; do
  mkdir -p /mnt/$fs
  mount /dev/$VG/data-$fs /mnt/$fs
done

rec versions/lvm-version.txt lvm version
rec proc/mountinfo.txt cat /proc/self/mountinfo
note proc/mountinfo.txt "the guest's mountinfo: ext4, xfs and btrfs on LVs agdata/data-* at /mnt/<fs>; / on /dev/vda (no dm)"
for fs in ext4 xfs btrfs; do
  # st_dev of a btrfs mount is an anonymous device (0:NN): the block device is the mount source
  majmin=$(stat -L -c '%Hr:%Lr' /dev/$VG/data-$fs)
  rec "stat/$fs-mountpoint-st-dev.txt" mountpoint -d /mnt/$fs
  rec "sysfs/$fs-dev.txt" cat "/sys/dev/block/$majmin/dev"
  rec "sysfs/$fs-dm-name.txt" cat "/sys/dev/block/$majmin/dm/name"
  rec "sysfs/$fs-dm-uuid.txt" cat "/sys/dev/block/$majmin/dm/uuid"
  rec "sysfs/$fs-size.txt" cat "/sys/dev/block/$majmin/size"
  rec "lvm/lvs-$fs.json" lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" "$VG/data-$fs"
done
rootmm=$(mountpoint -d /)
rec sysfs/root-dev.txt cat "/sys/dev/block/$rootmm/dev"
rec sysfs/root-size.txt cat "/sys/dev/block/$rootmm/size"
note sysfs/root-dev.txt "/ is on a plain virtio disk: /sys/dev/block/<maj:min>/dm does not exist"
rec lvm/vgs.json vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,vg_extent_size,vg_free_count "$VG"
rec lvm/pvs.json pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,pv_free

rec btrfs/filesystem-show.txt btrfs filesystem show --raw /mnt/btrfs
rec df/before.txt df -B1 --output=source,fstype,size,used,avail,itotal,iused,target /mnt/ext4 /mnt/xfs /mnt/btrfs

rec lvm/lvextend-ext4.txt lvextend -L 1610612736b "$VG/data-ext4"
rec fs/resize2fs.txt resize2fs /dev/mapper/$VG-data--ext4
rec lvm/lvextend-xfs.txt lvextend -L 1610612736b "$VG/data-xfs"
rec fs/xfs_growfs.txt xfs_growfs /mnt/xfs
rec lvm/lvextend-btrfs.txt lvextend -L 1610612736b "$VG/data-btrfs"
rec fs/btrfs-resize.txt btrfs filesystem resize 1:max /mnt/btrfs
rec df/after.txt df -B1 --output=source,fstype,size,used,avail,itotal,iused,target /mnt/ext4 /mnt/xfs /mnt/btrfs
rec lvm/lvs-ext4-after.json lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" "$VG/data-ext4"
rec lvm/vgs-after.json vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,vg_extent_size,vg_free_count "$VG"

# a grow of an ext4 that is already at the device size: resize2fs says "Nothing to do"
rec fs/resize2fs-nothing.txt resize2fs /dev/mapper/$VG-data--ext4
rec fs/xfs_growfs-nothing.txt xfs_growfs /mnt/xfs
# the VG cannot hold the requested size
rec_fail lvm/lvextend-vg-exhausted.txt lvextend -L 107374182400b "$VG/data-ext4"
note lvm/lvextend-vg-exhausted.txt "lvextend past the VG's free extents: fails, LV unchanged"
rec lvm/lvs-ext4-after-fail.json lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" "$VG/data-ext4"
# lvextend to the size it already has
rec_fail lvm/lvextend-same-size.txt lvextend -L 1610612736b "$VG/data-ext4"
note lvm/lvextend-same-size.txt "lvextend -L to the current size: fails with 'New size ... matches existing size'"
rec_fail lvm/lvs-missing.json lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" "$VG/nosuchlv"
