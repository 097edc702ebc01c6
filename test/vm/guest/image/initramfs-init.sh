#!/bin/busybox sh
# initramfs /init of the test VM: load virtio + ext4 + 9p modules, mount the root image (/dev/vda),
# switch_root into it and hand over to /sbin/autogrow-vm-init.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modlist); do insmod "/lib/modules/$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "initramfs: cannot mount /dev/vda; powering off"
  poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/autogrow-vm-init
