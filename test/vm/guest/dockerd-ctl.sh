#!/bin/bash
# Controls the guest's dockerd: dockerd-ctl.sh start|stop|restart|status
# The daemon reads /etc/docker/daemon.json, which the environment setup wrote (storage driver and its
# options, live-restore). A test may rewrite that file and `restart`. The daemon log is appended to
# $AUTOGROW_ARTIFACTS_DIR/dockerd.log (visible on the host even when the guest hangs).
#   start    start dockerd unless running; wait until the API answers (fails after 180 s)
#   stop     SIGTERM, wait until the process is gone (fails after 120 s); with live-restore,
#            running containers keep running
#   restart  stop + start
#   status   exit 0 when the API answers
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
PIDFILE=/var/run/docker.pid
CONFIG=${AUTOGROW_DOCKERD_CONFIG:-/etc/docker/daemon.json}

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if running_pid >/dev/null; then
    docker version >/dev/null 2>&1 && return 0
  else
    mkdir -p "$AUTOGROW_ARTIFACTS_DIR"
    stamp "dockerd-ctl: starting dockerd ($(tr -d '\n ' <"$CONFIG" | cut -c1-300))"
    # setsid: the daemon must outlive the shell (or vitest worker) that asked for it
    setsid dockerd --config-file "$CONFIG" >>"$AUTOGROW_ARTIFACTS_DIR/dockerd.log" 2>&1 </dev/null &
  fi
  if ! wait_for 180 docker version; then
    echo "dockerd-ctl: dockerd did not come up; log tail:" >&2
    tail -n 30 "$AUTOGROW_ARTIFACTS_DIR/dockerd.log" >&2
    return 1
  fi
  stamp "dockerd-ctl: dockerd up"
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
