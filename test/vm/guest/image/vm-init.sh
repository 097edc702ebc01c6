#!/bin/bash
# PID 1 of the test VM (no systemd). Brings up a minimal userland with udev (libdevmapper and Docker's
# devicemapper driver want udev sync, like a real host), mounts the host's 9p shares, runs the guest
# entry point from the shared checkout, writes its exit code to the run share and powers off.
# Kernel command line:
#   autogrow.src=<abs path>    where to mount the checkout (tag "src", read-only); the host's path
#   autogrow.main=<rel path>   entry script inside the checkout (default test/vm/guest/guest-main.sh)
# Shares: "src" (checkout), "run" (per-run directory, read-write, at /mnt/run), "node" (the host's
# node binary directory, at /opt/hostnode). Anything smarter lives in the checkout, not in the image.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname autogrow-vm
ip link set lo up
echo "vm-init: userland up at $(cut -d' ' -f1 /proc/uptime)s"

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
SRC=$(arg autogrow.src)
MAIN=$(arg autogrow.main)
MAIN=${MAIN:-test/vm/guest/guest-main.sh}
P9=trans=virtio,version=9p2000.L,msize=512000
modprobe 9pnet_virtio 2>/dev/null
modprobe 9p 2>/dev/null
mount -t 9p -o "$P9" run /mnt/run || echo "vm-init: cannot mount the run share"
if [ -n "$SRC" ]; then
  mkdir -p "$SRC"
  # the checkout does not change during a run: let the guest cache it (much faster module loading)
  mount -t 9p -o "$P9,cache=loose,ro" src "$SRC" || echo "vm-init: cannot mount the checkout share"
fi
mount -t 9p -o "$P9,cache=loose,ro" node /opt/hostnode 2>/dev/null || echo "vm-init: no node share"

/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add --subsystem-match=block >/dev/null 2>&1
udevadm settle --timeout=30
echo "vm-init: udev settled at $(cut -d' ' -f1 /proc/uptime)s"

rc=127
if [ -n "$SRC" ] && [ -f "$SRC/$MAIN" ]; then
  echo "vm-init: running $MAIN"
  (cd "$SRC" && exec bash "$SRC/$MAIN" </dev/null)
  rc=$?
  echo "vm-init: $MAIN exited rc=$rc at $(cut -d' ' -f1 /proc/uptime)s"
else
  echo "vm-init: entry point '$SRC/$MAIN' not found"
fi
mountpoint -q /mnt/run && echo "$rc" > /mnt/run/rc
sync
/bin/busybox poweroff -f
