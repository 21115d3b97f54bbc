# Helpers shared by the command-line tests. Environment (set by CTest): FRESCO, H5_TOOL,
# GOLDEN_DIR, MPIEXEC. Each test works in its own temporary directory.
set -euo pipefail

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fresco-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs fresco on NP ranks (np 1 still goes through mpiexec, as on a cluster).
run_np() {
  local np=$1; shift
  "$MPIEXEC" -n "$np" --oversubscribe "$FRESCO" "$@"
}

# Expects a command to fail with one error line matching a pattern.
#   expect_error PATTERN -- command...
expect_error() {
  local pattern=$1; shift; [ "$1" = "--" ] && shift
  local rc=0
  "$@" >out.log 2>err.log || rc=$?
  LAST_RC=$rc
  [ "$rc" -ne 0 ] || { cat out.log err.log; fail "expected failure: $*"; }
  grep -q -- "$pattern" err.log || { cat err.log; fail "error of '$*' does not mention '$pattern'"; }
  local n
  n=$(grep -c "fresco: error" err.log || true)
  [ "$n" -eq 1 ] || { cat err.log; fail "expected exactly one error report, got $n: $*"; }
  echo "ok (exit $rc): $(grep 'fresco: error' err.log)"
}

# Small fixtures: tiny weights and a few prompts of tiny images.
make_tiny_fixtures() {
  "$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
  "$FRESCO" make-prompts --model flux-tiny --count "${1:-5}" --txt-len 5 --width 64 --height 48 \
    --steps 3 prompts.h5 >/dev/null
}
