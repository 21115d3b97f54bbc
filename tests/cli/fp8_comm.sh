# FP8 communication (--comm-dtype e4m3) on NP CPU ranks, flux-tiny, 80x80 images: the Ulysses
# all-to-all of q, k, v (sequence) and the stale K/V (patch) move as e4m3 with per-token
# scales. Each run is deterministic, is not the exact result, stays within a PSNR floor of it
# (fresco compare) and records what it moved; bad values are refused with one error.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
# Floor (dB of the latent against the exact single-rank run): measured on flux-tiny here
# (2026-11-26, CPU): e4m3 q/k/v 135.6 dB, e4m3 stale K/V 135.0 dB at np 2 (f32 stale K/V:
# 137.5 dB; the exact Ulysses run 164 dB). The floor is 10 dB below: it catches gross errors.
FLOOR=${FP8_PSNR_FLOOR_DB:-125}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 --width 80 --height 80 --steps 6 \
  prompts.h5 >/dev/null
gen() { run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 "$@"; }
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out exact >/dev/null
psnr() { "$FRESCO" compare "$1/img_0.h5" exact/img_0.h5 | tail -1 | sed -n 's/.* PSNR \([-+0-9.eE]*\) dB.*/\1/p'; }
check() {  # check NAME ARGS...: twice identical, inexact, above the floor
  local name=$1; shift
  gen --out "$name" "$@" >/dev/null
  gen --out "${name}_again" "$@" >/dev/null
  "$H5_TOOL" compare "$name/img_0.h5" "${name}_again/img_0.h5" /latent 0 || fail "$name is not deterministic"
  if "$H5_TOOL" compare "$name/img_0.h5" exact/img_0.h5 /latent 0 >/dev/null 2>&1; then
    fail "$name equals the exact run bit for bit: nothing was quantized"
  fi
  local db
  db=$(psnr "$name")
  awk -v v="$db" -v f="$FLOOR" 'BEGIN { exit !(v + 0 >= f + 0) }' || fail "$name: PSNR $db dB below the floor of $FLOOR dB"
  echo "ok: $name on $NP ranks: deterministic, PSNR $db dB against the exact run (floor $FLOOR)"
}
check ulysses8 --ulysses "$NP" --comm-dtype e4m3
[ "$("$H5_TOOL" attr ulysses8/img_0.h5 comm_dtype)" = e4m3 ] || fail "comm_dtype attribute"
check patch8 --parallel patch --patches "$NP" --warmup-steps 2 --comm-dtype e4m3
[ "$("$H5_TOOL" attr patch8/img_0.h5 stale_dtype)" = e4m3 ] || fail "stale_dtype attribute"
if [ "$NP" -eq 4 ]; then check usp8 --ulysses 2 --ring 2 --comm-dtype e4m3; fi
expect_error "comm-dtype must be auto or e4m3" -- gen --out bad --comm-dtype fp4
expect_error "means --stale-dtype e4m3" -- gen --out bad --parallel patch --patches "$NP" --comm-dtype e4m3 --stale-dtype bf16
