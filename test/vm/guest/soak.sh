#!/bin/bash
# The soak (soak/main.ts, the same driver as on the host) inside the test VM, on a backend the
# host's kernel cannot serve. Run by test/vm/soak-guest.ts (`npm run soak:guest`) in the `none`
# environment: the soak's rig makes its own storage (overlay-xfs: a loop XFS mounted prjquota as
# its private dockerd's data root; devicemapper: an LVM thin pool on a loop device;
# devicemapper-loop: Docker's loop-lvm files), as it does on the host.
#
# From run.env (the host validated every word):
#   AUTOGROW_SOAK_BACKEND       overlay-xfs | devicemapper | devicemapper-loop
#   AUTOGROW_SOAK_ARGS          the soak's arguments (--seed S --ops K | --minutes M, ...); empty: no soak
#   AUTOGROW_SOAK_CONTROL_ARGS  the control's arguments (--no-agent is added); empty: no control
# Leaves in $AUTOGROW_ARTIFACTS_DIR: soak.json and soak-logs/ (the operation log, every agent's
# log), soak-control.json and soak-control-logs/, containerd.log; prints
# `SOAK-GUEST backend=.. agent_rc=.. control_rc=..`. Exit 0 when the soak found no violation and
# the control bit (soak/main.ts's exit codes).
set -uo pipefail
. "$AUTOGROW_SRC/test/vm/guest/lib.sh"
A=$AUTOGROW_ARTIFACTS_DIR
BACKEND=${AUTOGROW_SOAK_BACKEND:?backend}
case "$BACKEND" in
  overlay-xfs) modprobe -a xfs overlay loop || die "soak.sh: modules for $BACKEND" ;;
  devicemapper | devicemapper-loop) modprobe -a dm-thin-pool loop || die "soak.sh: modules for $BACKEND" ;;
  *) die "soak.sh: no guest rig for backend '$BACKEND'" ;;
esac

# The soak's work dir (the pool's loop file, dockerd's socket and exec root, the agent's state and
# journal) on the scratch disk: the guest's / is a snapshot and its /tmp is small.
SCRATCH_MOUNT=/mnt/soak-scratch
mkfs.ext4 -q -F "$AUTOGROW_SCRATCH_DEV" || die "soak.sh: mkfs.ext4 $AUTOGROW_SCRATCH_DEV"
mkdir -p "$SCRATCH_MOUNT"
mount "$AUTOGROW_SCRATCH_DEV" "$SCRATCH_MOUNT" || die "soak.sh: mount $AUTOGROW_SCRATCH_DEV"
export TMPDIR=$SCRATCH_MOUNT

# containerd as its own daemon, as dockerd-ctl.sh runs it (dockerd's built-in start gives up on a
# slow TCG guest); the soak's dockerd uses it through --containerd-socket, also across its restarts
CONTAINERD_SOCKET=/run/containerd/containerd.sock
setsid containerd >>"$A/containerd.log" 2>&1 </dev/null &
wait_for 300 ctr --address "$CONTAINERD_SOCKET" version || die "soak.sh: containerd did not come up"
stamp "soak.sh: containerd up; soak on $BACKEND: $AUTOGROW_SOAK_ARGS"

# The storage as the kernel shows it, every 60 s, for the analysis of a violation afterwards (the
# rig removes its storage at the end): devicemapper's tables and pool status, the loop devices
# (the agent's kernel holds are loop devices), load and memory of the guest.
sample_storage() {
  while :; do
    {
      echo "=== $(date -u +%FT%TZ) $(cut -d' ' -f1-3 /proc/loadavg)"
      grep -E '^(MemAvailable|Committed_AS):' /proc/meminfo
      if [ "$BACKEND" != overlay-xfs ]; then
        dmsetup table
        dmsetup status --target thin-pool
        losetup -l -n -O NAME,BACK-FILE
        grep agsoak /proc/self/mountinfo
      else
        df -B1 --output=target,size,used,avail "$SCRATCH_MOUNT"/agsoak-*/fs/xfs 2>/dev/null
      fi
    } >>"$A/storage-samples.txt" 2>&1
    sleep 60
  done
}
sample_storage &
SAMPLER_PID=$!
trap 'kill "$SAMPLER_PID" 2>/dev/null' EXIT

cd "$AUTOGROW_SRC" || die "soak.sh: no checkout"
run_soak() { # <name> <args...>
  local name=$1
  shift
  node dist/soak/main.js --backend "$BACKEND" "$@" --containerd-socket "$CONTAINERD_SOCKET" \
    --out "$A/$name.json" --log-dir "$A/$name-logs"
}
agent_rc=skipped
if [ -n "${AUTOGROW_SOAK_ARGS:-}" ]; then # empty: the control alone (--control-only)
  # shellcheck disable=SC2086 # word lists checked by the host (test/vm/soak-guest.ts)
  run_soak soak $AUTOGROW_SOAK_ARGS
  agent_rc=$?
fi
control_rc=skipped
if [ -n "${AUTOGROW_SOAK_CONTROL_ARGS:-}" ]; then
  stamp "soak.sh: control (no agent): $AUTOGROW_SOAK_CONTROL_ARGS"
  # shellcheck disable=SC2086
  run_soak soak-control $AUTOGROW_SOAK_CONTROL_ARGS --no-agent
  control_rc=$?
fi
echo "SOAK-GUEST backend=$BACKEND agent_rc=$agent_rc control_rc=$control_rc"
{ [ "$agent_rc" = skipped ] || [ "$agent_rc" = 0 ]; } && { [ "$control_rc" = skipped ] || [ "$control_rc" = 0 ]; }
