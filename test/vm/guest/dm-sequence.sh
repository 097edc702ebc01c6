#!/bin/bash
# Seeded orders of events on grown devicemapper containers (run by test/vm/dm-sequence.test.ts in
# docker-dm-lvm or docker-dm-loop; the orders come from test/vm/dm-sequence-orders.ts through
# AUTOGROW_DMSEQ_ORDERS, `seed=<n>:<action>[:<container>] ...;seed=...`).
#
# Before each order: agent down, containers c1 and c2 fresh at the base size, running. Actions:
# grow-run (fill to ~32%, threshold 25%, the running agent grows it), grow-once (fill, `once`),
# grow-manual (`grow --by 512M`), stop-start (stop -t 1, sleep 3, start), restart (restart -t 1),
# stop, start, agent-term, agent-kill, agent-start, dockerd-restart. A fill is deleted and trimmed
# right after its grow, so the pool does not fill up.
#
# After every step, for each container: if it runs, its device and filesystem are at least as
# large as ever seen (else VIOLATION smaller); if it should run and does not (a start failed),
# `status` must name it as not persistent with the fix (REPORTED; with an agent running, its
# docker_autogrow_devicemapper_unpersisted_devices must count it too) or it is a VIOLATION
# unreported. A new "last sector read failed" in dmesg in a step with no such report is a
# VIOLATION too. Then the order settles: stopped containers started as the agent state is, then with
# an agent running; both must run at their grown size. Last, `docker rm -f` must leave no device.
#
# Prints `DMSEQ ...` per step and `DMSEQ-ORDER seed=.. steps=.. ok=.. reported=.. violations=..`
# per order; exits 0 (the host decides).
set -uo pipefail
. "$AUTOGROW_SRC/test/vm/guest/lib.sh"
. "$AUTOGROW_VM_ENV_FILE"
CLI=${AUTOGROW_DM_CLI:-$AUTOGROW_SRC/dist/src/main.js}
case "$CLI" in /*) ;; *) CLI="$AUTOGROW_SRC/$CLI" ;; esac
LIVE_RESTORE=${AUTOGROW_VM_LIVE_RESTORE:-0}
AG=/var/lib/docker-autogrow-seq
A=$AUTOGROW_ARTIFACTS_DIR
CONTAINERS=(c1 c2)
METRICS=127.0.0.1:9478
mkdir -p "$AG"
write_config() {
  cat >"$AG/config.yaml" <<EOT
interval: 2s
defaults: { threshold: 25%, step: 512M, minStep: 512M, maxSize: 6G, cooldown: 1s }
prediction: { enabled: false }
pool: { reserve: 5%, maxOvercommit: 20 }
docker: { socketPath: /var/run/docker.sock }
journal: { path: $AG/journal.jsonl }
metrics: { enabled: true, listen: '$METRICS' }
EOT
}
write_config
declare -A WANT MAXS MAXFS
AGENT_PID=
AGENT_N=0
dev_of() { docker inspect -f '{{.GraphDriver.Data.DeviceName}}' "$1" 2>/dev/null; }
sectors_of() { dmsetup table "$1" 2>/dev/null | awk 'NR == 1 {print $2}'; }
# printf, not print: mawk prints products above 2^31 as 3.10693e+09, which `[ -lt ]` cannot
# compare (the smaller-filesystem check then never fired)
fs_bytes() { docker exec "$1" stat -f -c '%S %b' / 2>/dev/null | awk '{printf "%.0f\n", $1 * $2}'; }
is_running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
unpersisted_total() {
  busybox wget -q -O - "http://$METRICS/metrics" 2>/dev/null |
    awk '/^docker_autogrow_devicemapper_unpersisted_devices/ {sum += $2} END {printf "%d\n", sum}'
}
metric_counts_unpersisted() { [ "$(unpersisted_total)" -gt 0 ]; }
oneline() { tr '\n' ' ' | cut -c1-"${1:-300}"; }
log() { echo "DMSEQ $*"; }
# kernel holds: read-only loop devices at offset 4096 (src/storage/devicemapper/persistence.ts)
holds_count() { losetup -l -n -O NAME,OFFSET,SIZELIMIT,RO | awk '$2 == 4096 && $3 == 4096 && $4 == 1' | wc -l; }
hold_of() { # <dm device name>
  local minor
  minor=$(dmsetup info -c --noheadings -o minor "$1" 2>/dev/null | tr -d ' ')
  [ -n "$minor" ] || return 0
  losetup -l -n -O NAME,BACK-FILE,OFFSET | awk -v b="/dev/dm-$minor" '$2 == b && $3 == 4096 {print $1}'
}

agent_start() {
  AGENT_N=$((AGENT_N + 1))
  local agent_log="$A/dmseq-agent-$SEED-$AGENT_N.log"
  local try
  for try in 1 2 3; do
    node "$CLI" run --config "$AG/config.yaml" >>"$agent_log" 2>&1 &
    AGENT_PID=$!
    wait_for 300 grep -q 'agent ready' "$agent_log" && return 0
    # dockerd busy at the agent's start (socket hang up under TCG): the agent exits; try again
    kill -0 "$AGENT_PID" 2>/dev/null && break
    sleep 5
  done
  log "seed=$SEED agent-start: not ready: $(tail -3 "$agent_log" | oneline)"
  return 1
}
agent_stop() { # <signal>
  [ -n "$AGENT_PID" ] || return 0
  kill "-$1" "$AGENT_PID" 2>/dev/null
  wait "$AGENT_PID" 2>/dev/null
  AGENT_PID=
}

fill() { # <container>: used to ~32% of the filesystem (threshold 25%)
  local stat_out bs blocks avail count
  stat_out=$(docker exec "$1" stat -f -c '%S %b %a' /) || return 1
  read -r bs blocks avail <<<"$stat_out"
  count=$(((blocks * bs * 32 / 100 - (blocks - avail) * bs) / 1048576))
  [ "$count" -gt 0 ] || count=1
  docker exec "$1" dd if=/dev/zero of=/fill bs=1M count=$count 2>/dev/null
  docker exec "$1" sync
}
unfill() { # <container>: delete the fill and give its blocks back to the pool
  local dev
  dev=$(dev_of "$1")
  docker exec "$1" rm -f /fill
  docker exec "$1" sync
  fstrim "$AUTOGROW_DATA_ROOT/devicemapper/mnt/${dev##*-}" 2>/dev/null || true
}

# One step; prints what it did. Returns non-zero when the action itself failed.
act() { # <action> [container]
  local action=$1 c=${2:-} before rc=0 out
  case "$action" in
    grow-run)
      before=$(sectors_of "$(dev_of "$c")")
      fill "$c"
      wait_for 180 bash -c "[ \"\$(dmsetup table $(dev_of "$c") | awk '{print \$2}')\" -gt $before ]" || rc=1
      # the filesystem grow follows the device's within the same grow
      sleep 3
      unfill "$c"
      ;;
    grow-once)
      fill "$c"
      out=$(node "$CLI" once --config "$AG/config.yaml" 2>&1) || rc=$?
      echo "$out" >>"$A/dmseq-once-$SEED.log"
      unfill "$c"
      ;;
    grow-manual)
      out=$(node "$CLI" grow "$c" --by 512M --config "$AG/config.yaml" 2>&1) || rc=$?
      echo "$out" >>"$A/dmseq-grow-$SEED.log"
      [ $rc -eq 0 ] || log "seed=$SEED grow-manual:$c rc=$rc: $(echo "$out" | tail -2 | oneline)"
      ;;
    stop-start)
      docker stop -t 1 "$c" >/dev/null
      sleep 3
      out=$(docker start "$c" 2>&1 >/dev/null) || rc=$?
      WANT[$c]=1
      ;;
    restart)
      out=$(docker restart -t 1 "$c" 2>&1 >/dev/null) || rc=$?
      WANT[$c]=1
      ;;
    stop)
      docker stop -t 1 "$c" >/dev/null || rc=$?
      WANT[$c]=0
      ;;
    start)
      out=$(docker start "$c" 2>&1 >/dev/null) || rc=$?
      WANT[$c]=1
      ;;
    agent-term) agent_stop TERM ;;
    agent-kill) agent_stop KILL ;;
    agent-start) agent_start || rc=1 ;;
    dockerd-restart)
      "$AUTOGROW_DOCKERD_CTL" restart >/dev/null 2>&1 || rc=$?
      if [ "$LIVE_RESTORE" != 1 ]; then for x in "${CONTAINERS[@]}"; do WANT[$x]=0; done; fi
      ;;
    *)
      log "unknown action $action"
      rc=2
      ;;
  esac
  [ -n "${out:-}" ] && [ $rc -ne 0 ] && ACT_ERR=$(echo "$out" | oneline)
  return $rc
}

# After a step: every container's state; counts into OK / REPORTED / VIOLATIONS.
check() { # <label>
  local label=$1 c dev running sectors fs status_out verdict="ok" detail="" failed_before failed_now
  failed_now=$(dmesg | grep -c 'last sector read failed')
  for c in "${CONTAINERS[@]}"; do
    dev=$(dev_of "$c")
    sectors=$(sectors_of "$dev")
    if is_running "$c"; then
      fs=$(fs_bytes "$c")
      detail+=" $c=run/${sectors:-none}/${fs:-?}"
      # a size that is not a plain integer counts as smaller: `[ -lt ]` on it is false, not an error
      if ! [[ "$sectors" =~ ^[0-9]+$ && "$fs" =~ ^[0-9]+$ ]] || [ "$sectors" -lt "${MAXS[$c]}" ] || [ "$fs" -lt "${MAXFS[$c]}" ]; then
        verdict=violation
        detail+="(SMALLER than ${MAXS[$c]}/${MAXFS[$c]})"
      else
        MAXS[$c]=$sectors
        MAXFS[$c]=$fs
      fi
    else
      detail+=" $c=stopped/${sectors:-none}"
      if [ "${WANT[$c]}" = 1 ]; then
        # a start failed: the agent must say so, with the fix
        status_out=$(node "$CLI" status --config "$AG/config.yaml" 2>&1)
        echo "== $label" >>"$A/dmseq-status-$SEED.log"
        echo "$status_out" >>"$A/dmseq-status-$SEED.log"
        if grep -q "$c: not persistent" <<<"$status_out" && grep -q 'restart dockerd' <<<"$status_out"; then
          [ "$verdict" = violation ] || verdict=reported
          detail+="(start failed, reported)"
          # a running agent counts it in its metric too (stopped containers included)
          if [ -n "$AGENT_PID" ] && ! wait_for 20 metric_counts_unpersisted; then
            verdict=violation
            detail+="(metric UNREPORTED)"
          fi
        else
          verdict=violation
          detail+="(start failed, UNREPORTED)"
        fi
      fi
    fi
  done
  failed_before=$LAST_SECTOR_FAILURES
  LAST_SECTOR_FAILURES=$failed_now
  if [ "$failed_now" -gt "$failed_before" ]; then
    detail+=" last-sector-read-failed+$((failed_now - failed_before))"
    # the kernel saw a device shorter than its filesystem: only a failed start that status
    # names with the fix may explain it
    if [ "$verdict" = ok ]; then
      verdict=violation
      detail+="(UNREPORTED)"
    fi
  fi
  if [ -n "$AGENT_PID" ]; then
    detail+=" metric:$(busybox wget -q -O - "http://$METRICS/metrics" 2>/dev/null | grep '^docker_autogrow_devicemapper_unpersisted' | sed 's/docker_autogrow_devicemapper_unpersisted_devices//' | tr -d ' \n')"
  fi
  detail+=" holds=$(holds_count)"
  case "$verdict" in
    ok) OK=$((OK + 1)) ;;
    reported) REPORTED=$((REPORTED + 1)) ;;
    *) VIOLATIONS=$((VIOLATIONS + 1)) ;;
  esac
  log "seed=$SEED $label result=$verdict t=$(cut -d' ' -f1 /proc/uptime)${detail}"
}

run_order() { # <order text>
  local text=$1 steps step action c index=0 t0 leftover
  SEED=${text%%:*}
  SEED=${SEED#seed=}
  steps=${text#*:}
  OK=0 REPORTED=0 VIOLATIONS=0 AGENT_N=0
  t0=$(cut -d' ' -f1 /proc/uptime)
  stamp "dm-sequence: order seed=$SEED: $steps"
  rm -rf "$AG" && mkdir -p "$AG" && write_config
  for c in "${CONTAINERS[@]}"; do
    docker run -d --name "$c" --network none "$AUTOGROW_BUSYBOX_IMAGE" sleep 1000000 >/dev/null || die "run $c"
    WANT[$c]=1
    MAXS[$c]=$(sectors_of "$(dev_of "$c")")
    MAXFS[$c]=$(fs_bytes "$c")
  done
  LAST_SECTOR_FAILURES=$(dmesg | grep -c 'last sector read failed')
  for step in $steps; do
    index=$((index + 1))
    action=${step%%:*}
    c=
    [ "$step" != "$action" ] && c=${step#*:}
    ACT_ERR=
    act "$action" "$c"
    local rc=$?
    check "step=$index action=$step rc=$rc${ACT_ERR:+ err=\"$ACT_ERR\"}"
  done
  # settle 1: start what is stopped, with the agent as the order left it
  for c in "${CONTAINERS[@]}"; do
    is_running "$c" && continue
    ACT_ERR=
    act start "$c"
    check "settle=start-as-is $c rc=$?${ACT_ERR:+ err=\"$ACT_ERR\"} agent=${AGENT_PID:+up}"
  done
  # settle 2: with an agent (its recover and passes fix what can be fixed), then start again
  [ -n "$AGENT_PID" ] || agent_start
  sleep 6
  for c in "${CONTAINERS[@]}"; do
    is_running "$c" && continue
    act start "$c"
    check "settle=start-with-agent $c rc=$?"
  done
  # every container must run at its grown size now, whatever happened before
  for c in "${CONTAINERS[@]}"; do is_running "$c" || VIOLATIONS=$((VIOLATIONS + 1)); done
  local sizes=""
  for c in "${CONTAINERS[@]}"; do sizes+=" $c=${MAXS[$c]}"; done
  local hashes=() devs=()
  for c in "${CONTAINERS[@]}"; do
    local d
    d=$(dev_of "$c")
    devs+=("$d")
    hashes+=("${d##*-}")
  done
  docker rm -f "${CONTAINERS[@]}" >/dev/null
  sleep 8
  leftover=0
  for h in "${hashes[@]}"; do leftover=$((leftover + $(dmsetup ls | grep -c -- "$h"))); done
  agent_stop TERM
  # whatever is left goes before the next order (and counts as a violation)
  [ "$leftover" -gt 0 ] && {
    VIOLATIONS=$((VIOLATIONS + 1))
    dmsetup ls >>"$A/dmseq-leftover-$SEED.txt"
    for d in "${devs[@]}"; do
      h=$(hold_of "$d")
      [ -n "$h" ] && losetup -d "$h"
    done
  }
  log "seed=$SEED done leftover_devices=$leftover sizes:$sizes"
  echo "DMSEQ-ORDER seed=$SEED steps=$index ok=$OK reported=$REPORTED violations=$VIOLATIONS seconds=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%d", b - a}')"
}

# AUTOGROW_DMSEQ_NO_DEFERRED=1 (variant lvm-no-deferred, outside CI): dockerd without deferred
# removal and deletion, so no kernel hold is possible and a stop removes the grown device: the
# agent's re-create and what status says carry the grow (src/policy/persistence.ts)
if [ "${AUTOGROW_DMSEQ_NO_DEFERRED:-0}" = 1 ]; then
  sed -i -e 's/dm\.use_deferred_removal=true/dm.use_deferred_removal=false/' \
    -e 's/dm\.use_deferred_deletion=true/dm.use_deferred_deletion=false/' "$AUTOGROW_DOCKERD_CONFIG"
  "$AUTOGROW_DOCKERD_CTL" restart >/dev/null 2>&1 || die "dockerd restart without deferred removal"
  docker info 2>/dev/null | grep -q 'Deferred Removal Enabled: false' ||
    die "dockerd still defers removals: $(docker info 2>/dev/null | grep Deferred | oneline)"
  stamp "dm-sequence: dockerd without deferred removal and deletion"
fi
IFS=';' read -r -a ORDERS <<<"${AUTOGROW_DMSEQ_ORDERS:?no orders}"
for order in "${ORDERS[@]}"; do run_order "$order"; done
stamp "dm-sequence: done"
exit 0
