# DistriFusion (--parallel patch) on NP ranks, flux-tiny, 80x80 images (5 token rows: patches
# of unequal height): with W >= steps and with full_sync it equals the single-rank result;
# with W < steps it is deterministic and finite, and its distance to the exact run is logged.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 80 --height 80 --steps 6 \
  prompts.h5 >/dev/null
gen() { run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --parallel patch --patches "$NP" "$@"; }
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out exact >/dev/null

gen --out warm --warmup-steps 6 > warm.log
gen --out sync --warmup-steps 1 --sync-mode full_sync > sync.log
gen --out displaced --warmup-steps 2 > displaced.log
gen --out displaced_again --warmup-steps 2 >/dev/null
gen --out half --warmup-steps 2 --stale-dtype bf16 > half.log
grep -q "stale K/V buffers" displaced.log || fail "the stale buffer memory is not reported"
[ "$("$H5_TOOL" attr displaced/img_0.h5 parallel)" = patch ] || fail "parallel attribute"
[ "$("$H5_TOOL" attr displaced/img_0.h5 warmup_steps)" = 2 ] || fail "warmup_steps attribute"
[ "$("$H5_TOOL" attr sync/img_0.h5 warmup_steps)" = 6 ] || fail "full_sync is not recorded as all steps synchronous"
for i in 0 1; do
  "$H5_TOOL" compare "warm/img_$i.h5" "exact/img_$i.h5" /latent 1e-5 || fail "W >= steps differs from exact"
  "$H5_TOOL" compare "sync/img_$i.h5" "exact/img_$i.h5" /latent 1e-5 || fail "full_sync differs from exact"
  "$H5_TOOL" compare "displaced/img_$i.h5" "displaced_again/img_$i.h5" /latent 0 || fail "displaced run is not deterministic"
  # Results exist only when finite (fresco refuses to write non-finite latents).
  echo "displaced (W=2, np $NP) vs exact: $("$FRESCO" compare "displaced/img_$i.h5" "exact/img_$i.h5" | tail -1)"
  echo "displaced bf16 buffers vs exact: $("$FRESCO" compare "half/img_$i.h5" "exact/img_$i.h5" | tail -1)"
done
# The displaced steps really differ from the exact run (stale activations are used).
! "$H5_TOOL" compare displaced/img_0.h5 exact/img_0.h5 /latent 0 >/dev/null || fail "displaced equals exact bit for bit"
grep -q "waited on communication" displaced.log || fail "no per-step accounting"
grep -q "displaced gathers: .* posted" displaced.log || fail "no report of the displaced gathers"
expect_error "--ulysses and --ring apply to --parallel sequence" -- gen --out bad --ulysses 2
expect_error "option --warmup-steps must be at least 1" -- gen --out bad --warmup-steps 0
expect_error "option --sync-mode must be async or full_sync" -- gen --out bad --sync-mode sometimes
echo "distrifusion at np $NP: ok"
