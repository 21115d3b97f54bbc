# The op test program on the CUDA backend with one environment switch flipped (the argument,
# NAME=VALUE: a row of the registry in src/core/tuning.cpp that gives a value for the op test),
# so that the path the switch selects stays tested. Skipped (exit 77) where no CUDA backend runs.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
if ! grep -q "^backend cuda" info.txt; then
  echo "SKIP: no CUDA backend here ($(grep -E 'CUDA' info.txt | head -1))"; exit 77
fi
rc=0
env "$1" "$TEST_BACKEND_OPS" --backend cuda > ops.log || rc=$?
grep -E 'FAIL' ops.log || true
tail -1 ops.log
[ "$rc" = 0 ] || fail "the op test fails on the CUDA backend with $1"
echo "ok: the CUDA backend's ops with $1"
