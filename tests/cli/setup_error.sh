# A set-up error that every rank sees is reported once for the whole job, the job exits
# non-zero, and no output is written.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
make_tiny_fixtures 3
"$FRESCO" init-weights --model flux-small other.h5 >/dev/null
expect_error "holds weights of preset flux-small, but the run uses flux-tiny" -- \
  run_np "$NP" generate --weights other.h5 --model flux-tiny --prompts prompts.h5 --out out
[ -z "$(ls -A out)" ] || fail "output written despite the error"
