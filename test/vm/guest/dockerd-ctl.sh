#!/bin/bash
# Controls the guest's dockerd: dockerd-ctl.sh start|stop|restart|status
# The daemon reads /etc/docker/daemon.json, which the environment setup wrote (storage driver and its
# options, live-restore). A test may rewrite that file and `restart`. The daemon log is appended to
# $AUTOGROW_ARTIFACTS_DIR/dockerd.log (visible on the host even when the guest hangs).
#   start    start containerd (own daemon) and dockerd unless running; wait until the API answers
#            (300 s; a dockerd that dies during start-up is retried once)
#   stop     SIGTERM, wait until the process is gone (fails after 120 s); with live-restore,
#            running containers keep running
#   restart  stop + start
#   status   exit 0 when the API answers
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
# a current engine selected by engine-use.sh (its root shared by the host): its own control script
[ -f /run/autogrow-engine/engine.env ] && exec bash "$HERE/engine-dockerd.sh" "$@"
PIDFILE=/var/run/docker.pid
CONFIG=${AUTOGROW_DOCKERD_CONFIG:-/etc/docker/daemon.json}

CONTAINERD_SOCKET=/run/containerd/containerd.sock

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# containerd runs as its own daemon, as on a systemd host: dockerd's built-in one gives up after a
# fixed timeout, which a loaded TCG guest can exceed; an independent containerd also keeps
# live-restore containers alive across dockerd restarts. `stop` leaves it running.
ensure_containerd() {
  ctr --address "$CONTAINERD_SOCKET" version >/dev/null 2>&1 && return 0
  setsid containerd >>"$AUTOGROW_ARTIFACTS_DIR/containerd.log" 2>&1 </dev/null &
  if ! wait_for 300 ctr --address "$CONTAINERD_SOCKET" version; then
    echo "dockerd-ctl: containerd did not come up; log tail:" >&2
    tail -n 30 "$AUTOGROW_ARTIFACTS_DIR/containerd.log" >&2
    return 1
  fi
  stamp "dockerd-ctl: containerd up"
}

start() {
  mkdir -p "$AUTOGROW_ARTIFACTS_DIR"
  if running_pid >/dev/null && docker version >/dev/null 2>&1; then return 0; fi
  ensure_containerd || return 1
  local attempt launcher i
  for attempt in 1 2; do
    launcher=""
    if ! running_pid >/dev/null; then
      stamp "dockerd-ctl: starting dockerd, attempt $attempt ($(tr -d '\n ' <"$CONFIG" | cut -c1-300))"
      # setsid: the daemon must outlive the shell (or vitest worker) that asked for it
      setsid dockerd --config-file "$CONFIG" --containerd "$CONTAINERD_SOCKET" \
        >>"$AUTOGROW_ARTIFACTS_DIR/dockerd.log" 2>&1 </dev/null &
      launcher=$!
    fi
    for ((i = 0; i < 300 * 4; i++)); do
      docker version >/dev/null 2>&1 && {
        stamp "dockerd-ctl: dockerd up"
        return 0
      }
      # the daemon died (its launcher is gone and no live pid file): retry once, then give up
      if [ -n "${launcher:-}" ] && ! kill -0 "$launcher" 2>/dev/null && ! running_pid >/dev/null; then
        echo "dockerd-ctl: dockerd exited during start-up (attempt $attempt)" >&2
        break
      fi
      sleep 0.25
    done
  done
  echo "dockerd-ctl: dockerd did not come up; log tail:" >&2
  tail -n 30 "$AUTOGROW_ARTIFACTS_DIR/dockerd.log" >&2
  return 1
}

stop() {
  local pid
  pid=$(running_pid) || return 0
  kill -TERM "$pid"
  if ! wait_for 120 bash -c "! kill -0 $pid"; then
    echo "dockerd-ctl: dockerd (pid $pid) did not stop" >&2
    return 1
  fi
  stamp "dockerd-ctl: dockerd stopped"
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
