#!/bin/bash
# Data-filesystem growth on a real kernel (run by test/vm/data-filesystem.test.ts in an `none` VM):
# for each filesystem in $AUTOGROW_DATAFS_FILESYSTEMS (default "ext4 xfs btrfs"), Docker's data root
# on a 512 MiB LVM LV of that filesystem, dockerd on it (overlay2; btrfs: the btrfs driver), and:
#   1. control: without the agent, a writer in a container without a size limit hits ENOSPC;
#   2. with the agent: the same writer finishes, the agent extended the LV and the filesystem online,
#      and `df` agrees with the agent's metrics;
#   3. VG exhausted: a clear cannot-grow reason (metric), LV unchanged, no pending intent;
#   4. only for the filesystems in $AUTOGROW_DATAFS_KILL_FILESYSTEMS (default "ext4"; recovery is the
#      same code for every filesystem, and each agent start costs minutes under TCG): a real kill -9 of
#      the agent after lvextend and before the filesystem grow (the grow tool is a wrapper that
#      blocks), then a restart that finishes the grow.
#   5. for each case in $AUTOGROW_DATAFS_UNDERNEATH (default "whole-disk pv"; "none" for none), a
#      loop-file disk grown underneath (truncate + losetup -c) with the agent running:
#      whole-disk: ext4 on the whole loop device (control: without the agent a writer hits ENOSPC);
#      the agent grows the filesystem into the device online while a writer writes;
#      pv: loop device -> PV -> VG -> LV (all of the VG) -> XFS; the agent pvresizes the PV, then the
#      normal lvextend + xfs_growfs when a writer crosses the threshold. Both: writer rc 0, df = metrics.
# $AUTOGROW_DATAFS_FILESYSTEMS=none skips 1-4 (iterating on 5 alone).
# Prints "DATAFS <fs> <check>: ok ..." per check and "DATAFS PASSED" at the end; the host asserts on them.
set -euo pipefail
. "$AUTOGROW_SRC/test/vm/guest/lib.sh"
. "$AUTOGROW_VM_ENV_FILE"
SRC=$AUTOGROW_SRC
OUT=$AUTOGROW_ARTIFACTS_DIR/data-filesystem
mkdir -p "$OUT"
VG=agdata
LV=docker
DATA_ROOT=/var/lib/docker
STATE=/run/autogrow-state
IMAGE=autogrow-busybox:test
METRICS=http://127.0.0.1:9839/metrics
MIB=$((1024 * 1024))
LV_MIB=512
CHUNK_MIB=32
# the control and the writer under the agent write 1.25 x the LV
FILL_CHUNKS=$((LV_MIB * 5 / 4 / CHUNK_MIB))
AGENT_PID=""

[ -f "$SRC/dist/src/main.js" ] || die "dist/src/main.js missing: run npm run build on the host first"
[ -e "$SRC/node_modules/dockerode/package.json" ] || die "node_modules is not readable in the guest ($SRC/node_modules)"
modprobe -a dm-mod xfs overlay loop

fail() {
  echo "DATAFS FAIL: $*" >&2
  for f in "$OUT"/agent-*.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -n 20 "$f"; } >&2; done
  exit 1
}
ok() { echo "DATAFS $FS $1: ok${2:+ ($2)}"; }
metric() { # <name> [label filter regex]: value of the first matching sample
  busybox wget -qO- "$METRICS" 2>/dev/null | grep -E "^docker_autogrow_$1(\{[^}]*${2:-}[^}]*\})? " | head -n1 | awk '{print $2}'
}
lv_bytes() { lvs --noheadings --units b --nosuffix -o lv_size "$VG/$LV" | tr -d ' '; }
fs_bytes() { df -B1 --output=size "$DATA_ROOT" | tail -n1 | tr -d ' '; }
show() {
  echo "\$ $*"
  "$@"
}

is_kill_fs() { case " ${AUTOGROW_DATAFS_KILL_FILESYSTEMS:-ext4} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
fs_grow_tool() { case $1 in ext4) echo resize2fs ;; xfs) echo xfs_growfs ;; *) echo btrfs ;; esac; }

# The filesystem grow tool of a kill filesystem, wrapped: it runs the real tool, or, while
# /tmp/block-fs-grow exists, records its pid and blocks, so the test can kill -9 the agent between
# lvextend and the filesystem grow without a second agent start (each costs minutes under TCG).
write_fs_grow_wrapper() { # <fs>
  local real
  real=$(command -v "$(fs_grow_tool "$1")")
  cat >/tmp/fs-grow-wrapper <<EOT
#!/bin/sh
if [ -e /tmp/block-fs-grow ]; then
  echo \$\$ >/tmp/blocking-fs-grow.pid
  exec sleep 600
fi
exec $real "\$@"
EOT
  chmod +x /tmp/fs-grow-wrapper
}

write_config() { # <file> <threshold> [binaries yaml]
  cat >"$1" <<EOT
interval: 1s
journal:
  path: $STATE/journal.jsonl
metrics:
  listen: 127.0.0.1:9839
dataFilesystem:
  enabled: true
  interval: 1s
  threshold: $2
  step: 1G
  minStep: 512M
  maxSize: 6G
  vgReserve: 256M
  cooldown: 1s
${3:-}
EOT
}

start_agent() { # <config> <log name>
  node "$SRC/dist/src/main.js" run --config "$1" >>"$OUT/agent-$2.log" 2>&1 &
  AGENT_PID=$!
  wait_for 300 bash -c "busybox wget -qO- $METRICS | grep -q '^docker_autogrow_data_filesystem_look_timestamp_seconds '" ||
    fail "agent ($2) did not export data-filesystem metrics"
  stamp "agent up ($2, pid $AGENT_PID)"
}
stop_agent() {
  [ -n "$AGENT_PID" ] || return 0
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}

import_busybox() {
  local bb=/tmp/autogrow-busybox
  rm -rf $bb
  mkdir -p $bb/bin $bb/etc $bb/tmp $bb/proc $bb/sys $bb/dev
  cp /bin/busybox $bb/bin/busybox
  for applet in sh dd sleep sync rm; do ln -sf busybox "$bb/bin/$applet"; done
  tar -C $bb -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
  rm -rf $bb
}

# writer <name> <chunks of CHUNK_MIB> <pause s>: a container without a size limit writing and syncing
writer() {
  docker run -d --name "$1" --network none "$IMAGE" sh -c \
    "i=0; while [ \$i -lt $2 ]; do dd if=/dev/zero of=/fill\$i bs=1M count=$CHUNK_MIB conv=fsync 2>&1 || exit 1; i=\$((i+1)); sleep $3; done; sync" >/dev/null
}
writer_exit() { docker wait "$1"; }

setup_fs() { # <fs>
  lvcreate -q -y --wipesignatures y -n $LV -L ${LV_MIB}M $VG
  udevadm settle
  case $1 in
    ext4) mkfs.ext4 -q -F /dev/$VG/$LV ;;
    xfs) mkfs.xfs -q -f /dev/$VG/$LV ;;
    btrfs) mkfs.btrfs -q -f /dev/$VG/$LV ;;
  esac
  mkdir -p $DATA_ROOT
  mount /dev/$VG/$LV $DATA_ROOT
  # the btrfs storage driver limits and observes containers by qgroups
  [ "$1" != btrfs ] || btrfs quota enable $DATA_ROOT
  mkdir -p /etc/docker
  cat >/etc/docker/daemon.json <<EOT
{ "data-root": "$DATA_ROOT", "storage-driver": "$([ "$1" = btrfs ] && echo btrfs || echo overlay2)",
  "iptables": false, "ip-masq": false, "bridge": "none", "log-level": "info" }
EOT
  bash "$AUTOGROW_DOCKERD_CTL" start
  import_busybox
  rm -rf $STATE
  mkdir -p $STATE
}

teardown_fs() {
  stop_agent
  docker rm -f $(docker ps -aq) >/dev/null 2>&1 || true
  bash "$AUTOGROW_DOCKERD_CTL" stop
  umount $DATA_ROOT
  lvremove -q -y $VG/$LV
}

pvcreate -q "$AUTOGROW_SCRATCH_DEV"
vgcreate -q $VG "$AUTOGROW_SCRATCH_DEV"
for FS in ${AUTOGROW_DATAFS_FILESYSTEMS:-ext4 xfs btrfs}; do
  [ "$FS" != none ] || continue
  stamp "data-filesystem: $FS"
  setup_fs "$FS"
  cp "$OUT/../dockerd.log" "$OUT/dockerd-$FS.log" 2>/dev/null || true
  lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,segtype,vg_free,vg_extent_size $VG/$LV >"$OUT/lvs-$FS-before.json"

  # 1. control: 1.25 x the LV into its filesystem without the agent
  writer control $FILL_CHUNKS 0
  rc=$(writer_exit control)
  docker logs control >"$OUT/control-$FS.log" 2>&1
  [ "$rc" != 0 ] || fail "$FS control: the writer finished without the agent (rc 0)"
  grep -q 'No space left on device' "$OUT/control-$FS.log" || fail "$FS control: no ENOSPC in the writer's output"
  [ "$(lv_bytes)" = $((LV_MIB * MIB)) ] || fail "$FS control: the LV changed without the agent"
  docker rm control >/dev/null
  ok control "writer rc $rc: $(grep -m1 'No space left' "$OUT/control-$FS.log")"

  # 2. the agent grows LV + filesystem online while the writer writes
  if is_kill_fs "$FS"; then
    write_fs_grow_wrapper "$FS"
    write_config $STATE/agent.yaml 50% "binaries:
  $(fs_grow_tool "$FS"): /tmp/fs-grow-wrapper"
  else
    write_config $STATE/agent.yaml 50%
  fi
  start_agent $STATE/agent.yaml "$FS"
  fs_before=$(fs_bytes)
  writer filler $FILL_CHUNKS 1
  rc=$(writer_exit filler)
  docker logs filler >"$OUT/filler-$FS.log" 2>&1
  [ "$rc" = 0 ] || fail "$FS grow: the writer failed with the agent running (rc $rc): $(tail -n2 "$OUT/filler-$FS.log")"
  lv_after=$(lv_bytes)
  [ "$lv_after" -gt $((LV_MIB * MIB)) ] || fail "$FS grow: LV not extended ($lv_after)"
  sleep 3 # two looks: the metrics carry the settled size
  fs_after=$(fs_bytes)
  metric_size=$(metric data_filesystem_size_bytes)
  metric_lv=$(metric data_filesystem_lv_size_bytes)
  show df -B1 --output=source,fstype,size,used,avail,itotal,iused,target $DATA_ROOT | tee "$OUT/df-$FS-after.txt"
  busybox wget -qO- "$METRICS" | grep '^docker_autogrow_data_filesystem' | tee "$OUT/metrics-$FS-after.txt"
  [ "$fs_after" -gt "$fs_before" ] || fail "$FS grow: filesystem did not grow ($fs_before -> $fs_after)"
  [ "$(printf '%.0f' "$metric_size")" = "$fs_after" ] || fail "$FS grow: df size $fs_after != metric $metric_size"
  [ "$(printf '%.0f' "$metric_lv")" = "$lv_after" ] || fail "$FS grow: lvs $lv_after != metric $metric_lv"
  grows=$(metric data_filesystem_grows_total 'result="grown"')
  [ "$(printf '%.0f' "$grows")" -ge 1 ] || fail "$FS grow: grows_total{result=grown} is $grows"
  ok grow "writer rc 0; LV $((LV_MIB * MIB)) -> $lv_after; fs $fs_before -> $fs_after; df = metric; grows $grows"

  # 3. VG exhausted: another LV takes every free extent; the filler's files stay, a second writer
  #    crosses the threshold
  lvcreate -q -y -n hog -l 100%FREE $VG
  lv_before=$(lv_bytes)
  used=$(df -B1 --output=used $DATA_ROOT | tail -n1 | tr -d ' ')
  need=$(((fs_after * 65 / 100 - used) / (CHUNK_MIB * MIB) + 1))
  [ "$need" -gt 0 ] || need=1
  writer extra "$need" 0
  rc=$(writer_exit extra)
  [ "$rc" = 0 ] || fail "$FS exhausted: the second writer failed (rc $rc)"
  wait_for 60 bash -c "busybox wget -qO- $METRICS | grep -q '^docker_autogrow_data_filesystem_cannot_grow{reason=\"vg-exhausted\"} 1'" ||
    fail "$FS exhausted: no cannot_grow{reason=vg-exhausted} 1: $(busybox wget -qO- $METRICS | grep cannot_grow)"
  [ "$(lv_bytes)" = "$lv_before" ] || fail "$FS exhausted: the LV changed ($lv_before -> $(lv_bytes))"
  pending=$(metric data_filesystem_pending_recoveries)
  [ "$(printf '%.0f' "$pending")" = 0 ] || fail "$FS exhausted: $pending pending recoveries"
  intents=$(grep -c '"step":"intent"' $STATE/data-filesystem-journal.jsonl || true)
  dones=$(grep -c '"step":"done"' $STATE/data-filesystem-journal.jsonl || true)
  [ "$intents" = "$dones" ] || fail "$FS exhausted: $intents intents, $dones done in the journal"
  grep -m1 '"vg-exhausted"\|VG\|volume group' "$OUT/agent-$FS.log" >/dev/null || true
  vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free $VG >"$OUT/vgs-$FS-exhausted.json"
  ok vg-exhausted "cannot_grow{reason=vg-exhausted} 1, LV unchanged at $lv_before, journal $intents intents / $dones done"
  if ! is_kill_fs "$FS"; then
    docker rm -f extra >/dev/null
    lvremove -q -y $VG/hog
    teardown_fs
    continue
  fi

  # 4. kill -9 after lvextend, before the filesystem grow; the restart finishes it. The same agent:
  #    the grow tool blocks from now on, and freeing the VG (the extra writer's files keep the
  #    filesystem over its threshold) makes it grow at once.
  rm -f /tmp/blocking-fs-grow.pid
  touch /tmp/block-fs-grow
  lv_before=$(lv_bytes)
  fs_before=$(fs_bytes)
  lvremove -q -y $VG/hog
  wait_for 120 test -s /tmp/blocking-fs-grow.pid || fail "$FS kill: the agent never reached the filesystem grow"
  kill -KILL "$AGENT_PID"
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
  kill -KILL "$(cat /tmp/blocking-fs-grow.pid)" 2>/dev/null || true
  rm -f /tmp/block-fs-grow
  lv_killed=$(lv_bytes)
  fs_killed=$(fs_bytes)
  cp $STATE/data-filesystem-journal.jsonl "$OUT/journal-$FS-killed.jsonl"
  [ "$lv_killed" -gt "$lv_before" ] || fail "$FS kill: LV not extended before the kill ($lv_before -> $lv_killed)"
  [ "$fs_killed" = "$fs_before" ] || fail "$FS kill: filesystem changed before its grow ($fs_before -> $fs_killed)"
  tail -n1 $STATE/data-filesystem-journal.jsonl | grep -q '"step":"lv-extended"' || fail "$FS kill: last journal step is not lv-extended"
  docker rm -f extra >/dev/null
  ok killed "LV $lv_before -> $lv_killed, fs still $fs_killed, journal ends at lv-extended"
  start_agent $STATE/agent.yaml "$FS-restart"
  wait_for 120 bash -c "[ \$(df -B1 --output=size $DATA_ROOT | tail -n1 | tr -d ' ') -gt $fs_before ]" ||
    fail "$FS recover: filesystem not grown after the restart"
  wait_for 30 bash -c "busybox wget -qO- $METRICS | grep -q '^docker_autogrow_data_filesystem_pending_recoveries 0'" ||
    fail "$FS recover: pending recoveries not 0"
  [ "$(lv_bytes)" = "$lv_killed" ] || fail "$FS recover: LV changed again during recovery"
  grep -q 'data filesystem grow recovery' "$OUT/agent-$FS-restart.log" || fail "$FS recover: no recovery log line"
  cp $STATE/data-filesystem-journal.jsonl "$OUT/journal-$FS-recovered.jsonl"
  ok recovered "fs $fs_before -> $(fs_bytes) after the restart; LV $lv_killed"
  teardown_fs
done
# 5. disks grown underneath, on loop files kept on an LV of the scratch disk (not the guest's RAM)
LOOP_DIR=/mnt/loopfiles
LOOPVG=agloop
start_dockerd_on() { # <device>: Docker's data root on it, overlay2
  mkdir -p $DATA_ROOT
  mount "$1" $DATA_ROOT
  mkdir -p /etc/docker
  cat >/etc/docker/daemon.json <<EOT
{ "data-root": "$DATA_ROOT", "storage-driver": "overlay2",
  "iptables": false, "ip-masq": false, "bridge": "none", "log-level": "info" }
EOT
  bash "$AUTOGROW_DOCKERD_CTL" start
  import_busybox
  rm -rf $STATE
  mkdir -p $STATE
}
stop_dockerd_off() {
  stop_agent
  docker rm -f $(docker ps -aq) >/dev/null 2>&1 || true
  bash "$AUTOGROW_DOCKERD_CTL" stop
  umount $DATA_ROOT
}
underneath_cases=${AUTOGROW_DATAFS_UNDERNEATH:-whole-disk pv}
if [ "$underneath_cases" != none ]; then
  lvcreate -q -y --wipesignatures y -n loopfiles -L 3G $VG
  udevadm settle
  mkfs.ext4 -q -F /dev/$VG/loopfiles
  mkdir -p $LOOP_DIR
  mount /dev/$VG/loopfiles $LOOP_DIR
fi
for CASE in $underneath_cases; do
  [ "$CASE" != none ] || continue
  FS=$CASE
  t0=$(cut -d' ' -f1 /proc/uptime)
  stamp "data-filesystem grown underneath: $CASE"
  img=$LOOP_DIR/$CASE.img
  if [ "$CASE" = whole-disk ]; then
    truncate -s 384M "$img"
    LOOPDEV=$(losetup -f --show "$img")
    mkfs.ext4 -q -F "$LOOPDEV"
    start_dockerd_on "$LOOPDEV"
    # control: without the agent, 1.25 x the device into its filesystem ends in ENOSPC
    writer control 15 0
    rc=$(writer_exit control)
    docker logs control >"$OUT/control-$CASE.log" 2>&1
    [ "$rc" != 0 ] || fail "$CASE control: the writer finished without the agent (rc 0)"
    grep -q 'No space left on device' "$OUT/control-$CASE.log" || fail "$CASE control: no ENOSPC"
    docker rm control >/dev/null
    ok control "writer rc $rc: $(grep -m1 'No space left' "$OUT/control-$CASE.log")"
    write_config $STATE/agent.yaml 95%
  else
    truncate -s 512M "$img"
    LOOPDEV=$(losetup -f --show "$img")
    pvcreate -q "$LOOPDEV"
    vgcreate -q $LOOPVG "$LOOPDEV"
    lvcreate -q -y --wipesignatures y -n docker -l 100%FREE $LOOPVG
    udevadm settle
    mkfs.xfs -q -f /dev/$LOOPVG/docker
    start_dockerd_on /dev/$LOOPVG/docker
    # control: the VG has nothing left, the LV cannot grow without a pvresize
    [ "$(vgs --noheadings --units b --nosuffix -o vg_free $LOOPVG | tr -d ' ')" = 0 ] || fail "$CASE control: VG $LOOPVG has free space"
    ok control "VG $LOOPVG 0 free: the LV cannot grow before the PV does"
    write_config $STATE/agent.yaml 50%
    sed -i 's/^  vgReserve: .*/  vgReserve: 0/; s/^  minStep: .*/  minStep: 256M/; s/^  step: .*/  step: 512M/' $STATE/agent.yaml
  fi
  start_agent $STATE/agent.yaml "$CASE"
  fs_before=$(fs_bytes)
  pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,dev_size,pe_start "$LOOPDEV" >"$OUT/pvs-$CASE-before.json" 2>/dev/null || true
  # the operator grows the disk
  truncate -s 1536M "$img"
  losetup -c "$LOOPDEV"
  stamp "$CASE: $LOOPDEV grown to $(blockdev --getsize64 "$LOOPDEV") bytes"
  writer filler 20 1
  rc=$(writer_exit filler)
  docker logs filler >"$OUT/filler-$CASE.log" 2>&1
  [ "$rc" = 0 ] || fail "$CASE: the writer failed with the agent running (rc $rc): $(tail -n2 "$OUT/filler-$CASE.log")"
  sleep 3 # two looks: the metrics carry the settled size
  fs_after=$(fs_bytes)
  show df -B1 --output=source,fstype,size,used,avail,target $DATA_ROOT | tee "$OUT/df-$CASE-after.txt"
  busybox wget -qO- "$METRICS" | grep '^docker_autogrow_data_filesystem' | tee "$OUT/metrics-$CASE-after.txt"
  [ "$fs_after" -gt "$fs_before" ] || fail "$CASE: filesystem did not grow ($fs_before -> $fs_after)"
  metric_size=$(metric data_filesystem_size_bytes)
  [ "$(printf '%.0f' "$metric_size")" = "$fs_after" ] || fail "$CASE: df size $fs_after != metric $metric_size"
  if [ "$CASE" = whole-disk ]; then
    action=grow-filesystem
    dev_bytes=$(blockdev --getsize64 "$LOOPDEV")
    [ $((dev_bytes - fs_after)) -lt $((dev_bytes / 10)) ] || fail "$CASE: filesystem $fs_after does not fill the $dev_bytes-byte device"
    detail="device $dev_bytes; fs $fs_before -> $fs_after"
  else
    action=pvresize
    pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,dev_size,pe_start "$LOOPDEV" | tee "$OUT/pvs-$CASE-after.json"
    pv_after=$(pvs --noheadings --units b --nosuffix -o pv_size "$LOOPDEV" | tr -d ' ')
    [ "$pv_after" -gt $((1024 * MIB)) ] || fail "$CASE: PV not resized ($pv_after)"
    lv_after=$(lvs --noheadings --units b --nosuffix -o lv_size $LOOPVG/docker | tr -d ' ')
    metric_lv=$(metric data_filesystem_lv_size_bytes)
    [ "$(printf '%.0f' "$metric_lv")" = "$lv_after" ] || fail "$CASE: lvs $lv_after != metric $metric_lv"
    detail="PV -> $pv_after; LV -> $lv_after; fs $fs_before -> $fs_after"
  fi
  grown=$(metric data_filesystem_device_grows_total "kind=\"$action\",result=\"grown\"")
  [ "$(printf '%.0f' "${grown:-0}")" -ge 1 ] || fail "$CASE: device_grows_total{kind=$action,result=grown} is ${grown:-absent}"
  unused=$(metric data_filesystem_device_unused_bytes)
  [ "$(printf '%.0f' "$unused")" -lt $((64 * MIB)) ] || fail "$CASE: $unused bytes still unused underneath"
  pending=$(metric data_filesystem_pending_recoveries)
  [ "$(printf '%.0f' "$pending")" = 0 ] || fail "$CASE: $pending pending recoveries"
  cp $STATE/data-filesystem-underneath-journal.jsonl "$OUT/journal-$CASE.jsonl"
  grep -q '"step":"done"' $STATE/data-filesystem-underneath-journal.jsonl || fail "$CASE: no done step in the journal"
  stop_dockerd_off
  if [ "$CASE" = pv ]; then
    vgchange -q -an $LOOPVG
    vgremove -q -f $LOOPVG
    pvremove -q "$LOOPDEV"
  fi
  losetup -d "$LOOPDEV"
  rm -f "$img"
  t1=$(cut -d' ' -f1 /proc/uptime)
  ok grown-underneath "writer rc 0; $detail; df = metric; device_grows_total{$action,grown} $grown; case took $(awk "BEGIN{print $t1 - $t0}") s"
done
echo "DATAFS PASSED"
