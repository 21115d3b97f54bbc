# --dtype fp8 in `generate` and its hybrid schedule (--fp8-bf16-steps N: the first and last N
# steps in bf16), on flux-tiny images of 4 steps (FP8_BACKEND: cpu, or cuda from gpu_backend.sh,
# where each precision is a graph of its own):
#  - N covering every step gives the bf16 run's bits, N = 0 the plain fp8 run's;
#  - N = 1 differs from both, and lies nearer the bf16 run than plain fp8 does;
#  - the records say what ran; the option is refused without --dtype fp8, and by bench and forward.
source "$(dirname "$0")/common.sh"
backend=${FP8_BACKEND:-cpu}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 --width 64 --height 64 --steps 4 prompts.h5 >/dev/null
gen() {  # gen NAME OPTIONS...
  local name=$1; shift
  "$FRESCO" generate --backend "$backend" --weights weights.h5 --prompts prompts.h5 --out "$name" \
    --record "$name.json" "$@" >/dev/null
}
gen bf16 --dtype bf16
gen fp8 --dtype fp8
gen fp8_n0 --dtype fp8 --fp8-bf16-steps 0
gen fp8_all --dtype fp8 --fp8-bf16-steps 2
gen fp8_n1 --dtype fp8 --fp8-bf16-steps 1
"$H5_TOOL" compare fp8_all/img_0.h5 bf16/img_0.h5 /latent 0
"$H5_TOOL" compare fp8_n0/img_0.h5 fp8/img_0.h5 /latent 0
rel_l2() { "$FRESCO" compare "$1" "$2" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}'; }
hybrid=$(rel_l2 fp8_n1/img_0.h5 bf16/img_0.h5)
plain=$(rel_l2 fp8/img_0.h5 bf16/img_0.h5)
against_fp8=$(rel_l2 fp8_n1/img_0.h5 fp8/img_0.h5)
echo "final latent against bf16 ($backend): fp8 $plain, fp8 with the first and last step in bf16 $hybrid"
awk -v h="$hybrid" -v p="$plain" -v f="$against_fp8" 'BEGIN { exit !(h > 0 && f > 0 && h < p) }' \
  || fail "the hybrid schedule's latent ($hybrid from bf16, $against_fp8 from fp8) is not between them (fp8: $plain)"
grep -q '"dtype": "fp8"' fp8_n1.json && grep -q '"fp8_bf16_steps": 1' fp8_n1.json || fail "run record lacks the schedule"
expect_error "goes with --dtype fp8" -- "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out x \
  --dtype bf16 --fp8-bf16-steps 1
expect_error "must be 0 or more" -- "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out x \
  --dtype fp8 --fp8-bf16-steps -1
expect_error "is for generate" -- "$FRESCO" bench --model flux-tiny --width 64 --height 64 --steps 1 \
  --dtype fp8 --fp8-bf16-steps 1
expect_error "is for generate" -- "$FRESCO" forward --weights weights.h5 --inputs none.h5 --out x.h5 \
  --dtype fp8 --fp8-bf16-steps 1
expect_error "the decoder has none" -- "$FRESCO" decode --vae none.h5 --dtype fp8 none.h5
expect_error "the decoder has none" -- "$FRESCO" bench-decode --dtype fp8
