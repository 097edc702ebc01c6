# Shared helpers for the guest scripts (sourced, bash). Runs inside the test VM only.
#   stamp <msg>           timestamped progress line on the console (guest uptime, seconds)
#   die <msg>             print and exit 1
#   wait_for <secs> <cmd> poll <cmd> every 0.25 s until it succeeds; fails after <secs>
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
AUTOGROW_VM_RUN_DIR=${AUTOGROW_VM_RUN_DIR:-/mnt/run}
AUTOGROW_ARTIFACTS_DIR=${AUTOGROW_ARTIFACTS_DIR:-$AUTOGROW_VM_RUN_DIR/artifacts}
# Everything the environment setup learned, as `export K=V` lines: guest tests and shells source it.
AUTOGROW_VM_ENV_FILE=/run/autogrow-vm.env

stamp() { echo "[guest t=$(cut -d' ' -f1 /proc/uptime)s] $*"; }
die() {
  echo "guest: $*" >&2
  exit 1
}
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}
# export_env K V: export now and remember it for later shells / `dockerd-ctl.sh` / guest tests
export_env() {
  export "$1=$2"
  printf 'export %s=%q\n' "$1" "$2" >>"$AUTOGROW_VM_ENV_FILE"
}
# import_busybox <image>: an image without a registry (busybox-static rootfs, imported through the
# current DOCKER_HOST / default socket); used by setup-env.sh and engine-use.sh
import_busybox() {
  local bb
  bb=$(mktemp -d /tmp/autogrow-busybox.XXXXXX)
  mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/proc" "$bb/sys" "$bb/dev" "$bb/data" "$bb/root"
  cp /bin/busybox "$bb/bin/busybox"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$bb/etc/passwd"
  echo 'root:x:0:' >"$bb/etc/group"
  for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$bb/bin/$applet"; done
  tar -C "$bb" -c . | docker import -c 'CMD ["/bin/sh"]' - "$1" >/dev/null
  local rc=$?
  rm -rf "$bb"
  return $rc
}
