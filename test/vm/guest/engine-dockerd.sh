#!/bin/bash
# Controls a CURRENT engine's dockerd inside the guest (the root of test/engines/build-root.sh, shared by
# the host read-only and prepared by engine-use.sh): engine-dockerd.sh start|stop|restart|status, the
# same interface as dockerd-ctl.sh, which hands over to this script while /run/autogrow-engine/engine.env
# names an engine.
#
# dockerd runs through test/engines/run-dockerd.sh (own mount namespace, pivot_root into the root: a
# plain chroot is a measured trap, containers ran on the outer /). It lets dockerd start its own
# containerd (the root's, in the same namespace, so runc sees dockerd's overlay mounts; a separate
# containerd in another namespace would run containers on empty rootfs directories). Bound into
# the namespace at the same paths: the data root (from daemon.json, default /var/lib/docker) and
# /run/autogrow-engine (socket, pidfile, the copy of daemon.json), plus $AUTOGROW_ENGINE_BINDS
# (space-separated absolute directories). /run/docker.sock (= /var/run/docker.sock) is a symlink to the
# engine's socket, so DOCKER_HOST stays unix:///var/run/docker.sock.
# Log: $AUTOGROW_ARTIFACTS_DIR/dockerd-<engine>.log.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
STATE_DIR=/run/autogrow-engine
[ -f "$STATE_DIR/engine.env" ] || die "engine-dockerd: no engine selected (run engine-use.sh <engine>)"
. "$STATE_DIR/engine.env"
CONFIG=${AUTOGROW_DOCKERD_CONFIG:-/etc/docker/daemon.json}
PIDFILE=$STATE_DIR/docker.pid
SOCKET=$STATE_DIR/docker.sock
RUN_DOCKERD=$(cd "$HERE/../../engines" && pwd)/run-dockerd.sh
LOG=$AUTOGROW_ARTIFACTS_DIR/dockerd-$AUTOGROW_ENGINE.log

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  mkdir -p "$AUTOGROW_ARTIFACTS_DIR"
  if running_pid >/dev/null && docker version >/dev/null 2>&1; then return 0; fi
  local data_root attempt launcher i
  data_root=$(jq -r '."data-root" // "/var/lib/docker"' "$CONFIG") || die "engine-dockerd: cannot read $CONFIG"
  # the root is an overlay with a tmpfs upper (engine-use.sh): mount points can be made in it
  mkdir -p "$AUTOGROW_ENGINE_ROOT$data_root" "$data_root"
  cp "$CONFIG" "$STATE_DIR/daemon.json"
  ln -sfn "$SOCKET" /run/docker.sock
  # dockerd gives its own containerd 15 s to come up (moby libcontainerd/supervisor startupTimeout)
  # and exits otherwise; under TCG the first, cold start can take longer: up to three attempts
  for attempt in 1 2 3; do
    launcher=""
    if ! running_pid >/dev/null; then
      stamp "engine-dockerd: starting $AUTOGROW_ENGINE dockerd, attempt $attempt ($(tr -d '\n ' <"$CONFIG" | cut -c1-300))"
      # shellcheck disable=SC2086 # AUTOGROW_ENGINE_BINDS is a space-separated list of directories
      AUTOGROW_VM=1 setsid /bin/bash "$RUN_DOCKERD" "$AUTOGROW_ENGINE_ROOT" "$data_root" "$STATE_DIR" ${AUTOGROW_ENGINE_BINDS:-} -- \
        --config-file "$STATE_DIR/daemon.json" -H "unix://$SOCKET" --pidfile "$PIDFILE" \
        >>"$LOG" 2>&1 </dev/null &
      launcher=$!
    fi
    for ((i = 0; i < 300 * 4; i++)); do
      docker version >/dev/null 2>&1 && {
        stamp "engine-dockerd: $AUTOGROW_ENGINE dockerd up"
        return 0
      }
      if [ -n "${launcher:-}" ] && ! kill -0 "$launcher" 2>/dev/null && ! running_pid >/dev/null; then
        echo "engine-dockerd: dockerd exited during start-up (attempt $attempt)" >&2
        break
      fi
      sleep 0.25
    done
  done
  echo "engine-dockerd: $AUTOGROW_ENGINE dockerd did not come up; log tail:" >&2
  tail -n 30 "$LOG" >&2
  return 1
}

stop() {
  local pid
  pid=$(running_pid) || return 0
  kill -TERM "$pid"
  # dockerd stops its containerd before it exits: once it is gone, nothing holds the data root
  if ! wait_for 120 bash -c "! kill -0 $pid"; then
    echo "engine-dockerd: dockerd (pid $pid) did not stop" >&2
    return 1
  fi
  stamp "engine-dockerd: $AUTOGROW_ENGINE dockerd stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) docker version >/dev/null 2>&1 ;;
  *)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 2
    ;;
esac
