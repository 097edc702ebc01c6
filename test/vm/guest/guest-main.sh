#!/bin/bash
# Guest entry point (started by the image's PID 1 from the shared checkout, cwd = checkout).
# Reads the run description the host wrote to /mnt/run/run.env, prepares the environment, then runs
# in this order whatever was asked: an inline shell command, a script from the checkout, vitest files
# (project "guest"). Exit code: the first failure, else 0. Collects diagnostics into
# /mnt/run/artifacts/ in every case.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SRC=$(pwd)
# The checkout is shared read-only. Tools write next to it (vite bundles vitest.config.ts into
# node_modules/.vite-temp, vitest keeps a results cache): give the guest a throw-away writable view
# through an overlay whose upper layer is tmpfs. Nothing written in the guest reaches the host.
modprobe overlay
mkdir -p /run/checkout-overlay/upper /run/checkout-overlay/work
mount -t overlay checkout -o "lowerdir=$SRC,upperdir=/run/checkout-overlay/upper,workdir=/run/checkout-overlay/work" "$SRC" ||
  die "cannot overlay the checkout"
cd "$SRC" || die "cannot enter $SRC"
[ -f "$AUTOGROW_VM_RUN_DIR/run.env" ] || die "no $AUTOGROW_VM_RUN_DIR/run.env"
. "$AUTOGROW_VM_RUN_DIR/run.env"
mkdir -p "$AUTOGROW_ARTIFACTS_DIR"
# The host's node binary (shared read-only at /opt/hostnode with the rest of its directory): link only
# node itself, so the guest's own tools are never shadowed by the host's.
ln -sf /opt/hostnode/node /usr/local/bin/node
stamp "guest-main: environment=$AUTOGROW_VM_ENVIRONMENT node=$(node --version 2>&1)"

collect_artifacts() {
  local a=$AUTOGROW_ARTIFACTS_DIR
  dmesg >"$a/dmesg.txt" 2>&1
  cp "$AUTOGROW_VM_ENV_FILE" "$a/environment.env" 2>/dev/null
  { dmsetup table; echo; dmsetup status; } >"$a/dmsetup.txt" 2>&1
  findmnt >"$a/findmnt.txt" 2>&1
  [ -f /etc/docker/daemon.json ] && cp /etc/docker/daemon.json "$a/daemon.json"
  true
}

rc=0
export AUTOGROW_SRC=$SRC
if ! bash "$HERE/setup-env.sh" "$AUTOGROW_VM_ENVIRONMENT"; then
  echo "guest-main: environment '$AUTOGROW_VM_ENVIRONMENT' could not be prepared" >&2
  collect_artifacts
  exit 3
fi
. "$AUTOGROW_VM_ENV_FILE"
export AUTOGROW_SRC=$SRC
printf 'export AUTOGROW_SRC=%q\n' "$SRC" >>"$AUTOGROW_VM_ENV_FILE"

if [ -n "${AUTOGROW_VM_SHELL_FILE:-}" ]; then
  stamp "guest-main: running inline command"
  bash -eu "$AUTOGROW_VM_SHELL_FILE"
  step_rc=$?
  stamp "guest-main: inline command rc=$step_rc"
  [ $rc = 0 ] && rc=$step_rc
fi
if [ -n "${AUTOGROW_VM_SCRIPT:-}" ]; then
  stamp "guest-main: running $AUTOGROW_VM_SCRIPT"
  bash -u "$SRC/$AUTOGROW_VM_SCRIPT"
  step_rc=$?
  stamp "guest-main: $AUTOGROW_VM_SCRIPT rc=$step_rc"
  [ $rc = 0 ] && rc=$step_rc
fi
if [ -n "${AUTOGROW_VM_VITEST_FILES:-}" ]; then
  stamp "guest-main: vitest $AUTOGROW_VM_VITEST_FILES"
  # The checkout is mounted read-only: vite's cache goes to tmpfs. JUnit results go to the host.
  # shellcheck disable=SC2086 # a space-separated list of checkout-relative paths (validated by the host)
  AUTOGROW_VM_GUEST=1 node "$SRC/node_modules/vitest/vitest.mjs" run --project guest \
    --reporter=default --reporter=junit --outputFile.junit="$AUTOGROW_ARTIFACTS_DIR/junit.xml" \
    $AUTOGROW_VM_VITEST_FILES
  step_rc=$?
  stamp "guest-main: vitest rc=$step_rc"
  [ $rc = 0 ] && rc=$step_rc
fi
collect_artifacts
exit $rc
