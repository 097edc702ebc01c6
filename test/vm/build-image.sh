#!/bin/bash
# Builds (or reuses) the VM image that gives the tests a real device-mapper / XFS-quota kernel:
#   vmlinuz     Debian's stock kernel, unpacked from the linux-image-amd64 dependency (never installed here)
#   initrd.gz   a busybox initramfs that loads virtio/ext4/9p and switches to the root image
#   root.img    minbase bookworm (docker.io, dmsetup, lvm2, thin-provisioning-tools, xfsprogs, e2fsprogs,
#               btrfs-progs, udev, busybox-static), ext4 written by `mkfs.ext4 -d` (no loop mount needed)
# Everything comes from Debian packages. The image lives OUTSIDE the checkout, in
#   ${AUTOGROW_VM_CACHE:-/var/cache/docker-autogrow-vm}/<recipe-hash>/
# where <recipe-hash> covers this script and test/vm/guest/image/*, so CI and later sessions on the same
# machine reuse it, and a changed recipe builds a new one. The per-run guest logic (environments, dockerd
# control, vitest) is read from the 9p-shared checkout at boot, so changing it needs no rebuild.
#
# Usage: test/vm/build-image.sh [--print-dir]
#   --print-dir   only print the image directory this recipe maps to (no build)
# Last line of output: `AUTOGROW_VM_IMAGE=<dir> built=<0|1> seconds=<n>`.
# Needs root and working apt sources. Concurrent callers serialise on a lock; only one builds.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${AUTOGROW_VM_CACHE:-/var/cache/docker-autogrow-vm}
SUITE=bookworm
ROOT_PACKAGES=docker.io,dmsetup,lvm2,thin-provisioning-tools,xfsprogs,e2fsprogs,btrfs-progs,kmod,udev,util-linux,iproute2,procps,busybox-static,iptables,ca-certificates,jq
# initramfs modules: enough to reach the root disk (virtio-blk, ext4) and the 9p shares
INITRAMFS_MODULES="virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p"

recipe_hash() {
  # The script itself + the files baked into the image. Sorted, content-addressed.
  { sha256sum "$HERE/build-image.sh"; (cd "$HERE/guest/image" && sha256sum -- *); } \
    | awk '{print $1}' | sha256sum | cut -c1-16
}
HASH=$(recipe_hash)
DIR=$CACHE/$HASH
if [ "${1:-}" = --print-dir ]; then echo "$DIR"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "build-image: must run as root" >&2; exit 1; }
t0=$(date +%s)
mkdir -p "$CACHE"
exec 9>"$CACHE/$HASH.lock"
flock 9     # another process may be building the same recipe: wait for it, then reuse its result
if [ -e "$DIR/complete" ]; then
  echo "build-image: reusing $DIR"
  echo "AUTOGROW_VM_IMAGE=$DIR built=0 seconds=$(( $(date +%s) - t0 ))"
  exit 0
fi

need=()
for tool in mmdebstrap:mmdebstrap busybox:busybox-static depmod:kmod cpio:cpio mkfs.ext4:e2fsprogs \
  qemu-system-x86_64:qemu-system-x86; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; fi

WORK=$(mktemp -d "$CACHE/build-$HASH.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/img
mkdir -p "$OUT"
cd "$WORK"

# ---- kernel: take the .deb apart ---------------------------------------------------------------
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KV=${KPKG#linux-image-}
echo "build-image: kernel package $KPKG"
mkdir kernel
(cd kernel && apt-get download "$KPKG" >/dev/null && dpkg-deb -x ./*.deb x)
cp "kernel/x/boot/vmlinuz-$KV" "$OUT/vmlinuz"

# ---- root filesystem -------------------------------------------------------------------------
SOURCES=()
[ -f /etc/apt/sources.list.d/debian.sources ] && SOURCES=(/etc/apt/sources.list.d/debian.sources)
mmdebstrap --quiet --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" rootfs "${SOURCES[@]}"
# kernel modules, without the hardware drivers a virtio VM never loads (saves ~250 MB)
M=rootfs/lib/modules/$KV
mkdir -p "$M"
(cd "kernel/x/lib/modules/$KV" && tar cf - \
  --exclude=kernel/sound --exclude=kernel/drivers/gpu --exclude=kernel/drivers/media \
  --exclude=kernel/drivers/infiniband --exclude=kernel/drivers/staging --exclude=kernel/drivers/iio \
  --exclude=kernel/drivers/usb --exclude=kernel/drivers/net/wireless --exclude=kernel/drivers/net/ethernet \
  --exclude=kernel/drivers/bluetooth --exclude=kernel/drivers/isdn --exclude=kernel/drivers/mtd \
  --exclude=kernel/drivers/mmc --exclude=kernel/drivers/hid --exclude=kernel/drivers/input \
  --exclude=kernel/drivers/scsi --exclude=kernel/net/bluetooth --exclude=kernel/net/wireless \
  --exclude=kernel/net/mac80211 .) | (cd "$M" && tar xf -)
depmod -b rootfs "$KV"
rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/lib/apt/lists/*
install -m 0755 "$HERE/guest/image/vm-init.sh" rootfs/sbin/autogrow-vm-init
echo autogrow-vm > rootfs/etc/hostname
mkdir -p rootfs/mnt/run rootfs/opt/hostnode
# i440fx has IDE and a floppy; we ship no scsi/ata modules, so keep udev from probing them
cat > rootfs/etc/modprobe.d/autogrow-vm-blacklist.conf <<'EOT'
blacklist ata_piix
blacklist pata_acpi
blacklist ata_generic
blacklist floppy
blacklist kvm_amd
blacklist kvm_intel
blacklist kvm
EOT
# No lvmetad/dmeventd/systemd in the guest: LVM must not wait for udev-less events or monitoring.
sed -i 's/^\(\s*\)# *monitoring = 1/\1monitoring = 0/' rootfs/etc/lvm/lvm.conf
# Record what is inside, for the fixtures' headers and for humans.
chroot rootfs dpkg-query -W -f='${Package} ${Version}\n' > "$OUT/packages.txt"
echo "$KPKG $(dpkg-deb -f kernel/*.deb Version)" > "$OUT/kernel.txt"

truncate -s 4G "$OUT/root.img"
mkfs.ext4 -q -F -L agvmroot -d rootfs "$OUT/root.img"

# ---- initramfs ---------------------------------------------------------------------------------
mkdir -p initramfs/bin initramfs/dev initramfs/proc initramfs/sys initramfs/newroot initramfs/lib/modules
cp "$(command -v busybox)" initramfs/bin/busybox
: > initramfs/modlist
for m in $INITRAMFS_MODULES; do
  modprobe -d rootfs -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" initramfs/lib/modules/ && basename "$ko" >> initramfs/modlist
done
install -m 0755 "$HERE/guest/image/initramfs-init.sh" initramfs/init
(cd initramfs && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/initrd.gz"

cp "$HERE/build-image.sh" "$OUT/recipe-build-image.sh"
date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT/built-at.txt"
touch "$OUT/complete"
rm -rf "$DIR"
mv "$OUT" "$DIR"
ls -la "$DIR"
echo "build-image: root.img $(du -h --apparent-size "$DIR/root.img" | cut -f1) apparent, $(du -h "$DIR/root.img" | cut -f1) allocated"
echo "AUTOGROW_VM_IMAGE=$DIR built=1 seconds=$(( $(date +%s) - t0 ))"
