# --dtype fp8 (the token linears on e4m3 operands; on the CPU an exact emulation): flux-tiny's
# forward against the float64 golden is held to the rule of the bf16 mode: within twice the
# error of the same-precision PyTorch reference (tests/golden/make_fp8_golden.py, written from
# the docs' quantization rule), and visibly quantized (at least twice the bf16 forward's error).
# The GPU runs the same check in gpu_backend.sh.
source "$(dirname "$0")/common.sh"
g=$GOLDEN_DIR
backend=${FP8_BACKEND:-cpu}
"$FRESCO" forward --backend "$backend" --dtype fp8 --weights "$g/flux_tiny_weights.h5" \
  --inputs "$g/flux_tiny_inputs.h5" --out fp8.h5 >/dev/null
"$FRESCO" forward --backend "$backend" --dtype bf16 --weights "$g/flux_tiny_weights.h5" \
  --inputs "$g/flux_tiny_inputs.h5" --out bf16.h5 >/dev/null
rel_l2() { "$FRESCO" compare "$1" "$2" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}'; }
ours=$(rel_l2 fp8.h5 "$g/flux_tiny_velocity.h5")
torch_fp8=$(rel_l2 "$g/flux_tiny_velocity_fp8.h5" "$g/flux_tiny_velocity.h5")
bf16=$(rel_l2 bf16.h5 "$g/flux_tiny_velocity.h5")
echo "fp8 forward ($backend): relative L2 $ours (PyTorch fp8 reference: $torch_fp8; Fresco bf16: $bf16)"
awk -v a="$ours" -v b="$torch_fp8" 'BEGIN { exit !(a < 2 * b) }' \
  || fail "fp8 forward error $ours is not within twice the PyTorch fp8 reference's $torch_fp8"
awk -v a="$ours" -v b="$bf16" 'BEGIN { exit !(a > 2 * b) }' \
  || fail "fp8 forward error $ours is not above twice the bf16 forward's $bf16: were the linears quantized?"
# Twice: the same bits.
"$FRESCO" forward --backend "$backend" --dtype fp8 --weights "$g/flux_tiny_weights.h5" \
  --inputs "$g/flux_tiny_inputs.h5" --out again.h5 >/dev/null
"$H5_TOOL" compare fp8.h5 again.h5 /velocity 0
# --fp8-attention as well (attention_fp8: q, k, v and P in e4m3, one scale per tensor): held to
# the same-precision PyTorch reference of that rule (make_fp8_golden.py), and visibly other than
# the fp8 forward with exact attention.
"$FRESCO" forward --backend "$backend" --dtype fp8 --fp8-attention --weights "$g/flux_tiny_weights.h5" \
  --inputs "$g/flux_tiny_inputs.h5" --out fp8attn.h5 >/dev/null
ours_attn=$(rel_l2 fp8attn.h5 "$g/flux_tiny_velocity.h5")
torch_attn=$(rel_l2 "$g/flux_tiny_velocity_fp8attn.h5" "$g/flux_tiny_velocity.h5")
moved=$(rel_l2 fp8attn.h5 fp8.h5)
echo "fp8 + fp8 attention forward ($backend): relative L2 $ours_attn (PyTorch reference: $torch_attn;" \
  "against the fp8 forward: $moved)"
awk -v a="$ours_attn" -v b="$torch_attn" 'BEGIN { exit !(a < 2 * b) }' \
  || fail "fp8-attention forward error $ours_attn is not within twice the PyTorch reference's $torch_attn"
awk -v a="$moved" 'BEGIN { exit !(a > 1e-3) }' \
  || fail "--fp8-attention changed the fp8 forward by only $moved: was the attention quantized?"
