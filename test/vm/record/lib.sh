# Fixture recording helpers (sourced by test/vm/record/<area>.sh, inside the test VM).
#
# Every fixture is the VERBATIM stdout of one real command, so tests can hand it to the scripted runner
# unchanged; what produced it (argv, exit code, stderr file, environment, tool versions, date) goes to
# test/fixtures/<area>/_manifest.json, written by the host from the index lines appended here.
#
#   rec <file> <cmd...>        record stdout to <file>; the command must succeed
#   rec_fail <file> <cmd...>   the command must FAIL (exit != 0): stdout to <file>, stderr to
#                              <file without ext>.stderr.txt (a real error message is a fixture too)
#   note <file> <text>         attach an explanation to a fixture in the manifest
# <file> is relative to the area, e.g. `pool/status-rw.txt`.
. "$AUTOGROW_SRC/test/vm/guest/lib.sh"
[ -f "$AUTOGROW_VM_ENV_FILE" ] && . "$AUTOGROW_VM_ENV_FILE"
AREA=$(basename "$0" .sh)
REC_DIR=$AUTOGROW_ARTIFACTS_DIR/fixtures/$AREA
REC_INDEX=$REC_DIR/_index.jsonl
mkdir -p "$REC_DIR"
set -u

_rec() { # <must: ok|fail> <file> <cmd...>
  local must=$1 file=$2 rc=0 stderr_file=""
  shift 2
  mkdir -p "$(dirname "$REC_DIR/$file")"
  # a command that blocks fails the recording after 5 minutes instead of hanging the VM to its timeout
  timeout --kill-after=10 300 "$@" >"$REC_DIR/$file" 2>"$REC_DIR/$file.stderr.tmp" || rc=$?
  if [ -s "$REC_DIR/$file.stderr.tmp" ]; then
    stderr_file="${file%.*}.stderr.txt"
    mv "$REC_DIR/$file.stderr.tmp" "$REC_DIR/$stderr_file"
  else
    rm -f "$REC_DIR/$file.stderr.tmp"
  fi
  # argv as a JSON array (not via `jq --args`: jq would take arguments like --noheadings as its own)
  local argv_json
  argv_json=$(printf '%s\n' "$@" | jq -R . | jq -cs .)
  jq -cn --arg file "$file" --argjson exitCode "$rc" --arg stderrFile "$stderr_file" \
    --arg recordedAt "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson command "$argv_json" \
    '{file: $file, command: $command, exitCode: $exitCode, recordedAt: $recordedAt}
     + (if $stderrFile == "" then {} else {stderrFile: $stderrFile} end)' >>"$REC_INDEX"
  echo "rec: $file <- $* (exit $rc)"
  if [ "$must" = ok ] && [ $rc != 0 ]; then
    echo "rec: '$*' failed (exit $rc):" >&2
    cat "$REC_DIR/$stderr_file" >&2 2>/dev/null
    exit 1
  fi
  if [ "$must" = fail ] && [ $rc = 0 ]; then
    echo "rec: '$*' was expected to fail but succeeded" >&2
    exit 1
  fi
  return 0
}
rec() { _rec ok "$@"; }
rec_fail() { _rec fail "$@"; }
note() { jq -cn --arg file "$1" --arg note "$2" '{file: $file, note: $note}' >>"$REC_INDEX"; }
