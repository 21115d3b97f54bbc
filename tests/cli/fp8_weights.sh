# FP8 weights files (docs/file-formats.md "FP8 weights files"): `convert --dtype fp8` of a Fresco
# weights file (the golden flux-tiny) and of a bf16 one; `forward --dtype fp8` from the FP8 file
# equals, bit for bit, `forward --dtype fp8` from the file it was made from (one rank, and on the
# CPU two ranks of Ulysses sequence parallelism); --dtype bf16 runs it dequantized with a note;
# the hybrid schedule and --lora are refused; --help says all this. FP8_BACKEND: cpu, or cuda from gpu_backend.sh.
source "$(dirname "$0")/common.sh"
backend=${FP8_BACKEND:-cpu}
g=$GOLDEN_DIR
"$FRESCO" convert --dtype fp8 "$g/flux_tiny_weights.h5" fp8.h5 > out.log
grep -q "preset flux-tiny; FP8 weights file: .* token linears in e4m3" out.log || { cat out.log; fail "convert does not say what it wrote"; }
fwd() {  # fwd WEIGHTS OUT OPTIONS...
  local weights=$1 out=$2; shift 2
  "$FRESCO" forward --backend "$backend" --weights "$weights" --inputs "$g/flux_tiny_inputs.h5" --out "$out" "$@"
}
fwd "$g/flux_tiny_weights.h5" source_fp8.h5 --dtype fp8 >/dev/null
fwd fp8.h5 file_fp8.h5 --dtype fp8 >/dev/null 2>err.log
"$H5_TOOL" compare file_fp8.h5 source_fp8.h5 /velocity 0
if grep -q "note" err.log; then cat err.log; fail "--dtype fp8 from an FP8 file needs no note"; fi
if [ "$backend" = cpu ]; then
  run_np 2 forward --weights "$g/flux_tiny_weights.h5" --inputs "$g/flux_tiny_inputs.h5" --out source_np2.h5 \
    --dtype fp8 --ulysses 2 >/dev/null
  run_np 2 forward --weights fp8.h5 --inputs "$g/flux_tiny_inputs.h5" --out file_np2.h5 --dtype fp8 --ulysses 2 >/dev/null
  "$H5_TOOL" compare file_np2.h5 source_np2.h5 /velocity 0
fi

# Another dtype: the linears dequantized (q x scale), with a note; near the source's bf16 forward.
fwd "$g/flux_tiny_weights.h5" source_bf16.h5 --dtype bf16 >/dev/null
fwd fp8.h5 file_bf16.h5 --dtype bf16 >/dev/null 2>err.log
grep -q "fresco: note: fp8.h5 is an FP8 weights file: --dtype bf16 runs its token linears dequantized" err.log \
  || { cat err.log; fail "no note for a bf16 run of an FP8 file"; }
rel_l2() { "$FRESCO" compare "$1" "$2" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}'; }
err=$(rel_l2 file_bf16.h5 source_bf16.h5)
echo "bf16 forward of the dequantized FP8 file against the source's ($backend): relative L2 $err"
awk -v e="$err" 'BEGIN { exit !(e > 0 && e < 0.1) }' || fail "dequantized bf16 forward differs by $err"

# The hybrid schedule and LoRA need bf16 linears; a second conversion, a bad --dtype and an autoencoder are refused.
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 --width 64 --height 64 --steps 2 prompts.h5 >/dev/null
expect_error "the FP8 weights file fp8.h5 does not hold: run it from the bf16 file" -- \
  "$FRESCO" generate --backend "$backend" --weights fp8.h5 --prompts prompts.h5 --out x --dtype fp8 --fp8-bf16-steps 1
/usr/bin/python3 "$(dirname "$0")/../checkpoints/lora_fixture.py" write "$g/flux_tiny_weights.h5" style.safetensors
expect_error "--lora needs bf16 (or f32) weights: fp8.h5 is an FP8 weights file" -- \
  "$FRESCO" forward --backend "$backend" --weights fp8.h5 --inputs "$g/flux_tiny_inputs.h5" --out x.h5 --dtype fp8 \
  --lora style.safetensors:0.5
expect_error "fp8.h5 is already an FP8 weights file" -- "$FRESCO" convert --dtype fp8 fp8.h5 again.h5
expect_error "option --dtype: expected keep or fp8, got 'bf16'" -- "$FRESCO" convert --dtype bf16 fp8.h5 again.h5
expect_error "convert --dtype fp8 makes an FP8 weights file of it" -- "$FRESCO" convert "$g/flux_tiny_weights.h5" again.h5
expect_error "FP8 weights files are for FLUX transformer presets" -- \
  "$FRESCO" convert --dtype fp8 "$g/ae_tiny_weights.h5" again.h5
[ ! -e again.h5 ] || fail "a refused conversion left a file"

# A bf16 file's FP8 file is smaller: the token linears at one byte instead of two.
"$FRESCO" init-weights --model flux-tiny --dtype bf16 bf16.h5 >/dev/null
"$FRESCO" convert --dtype fp8 bf16.h5 bf16_fp8.h5 >/dev/null
echo "flux-tiny bf16 file $(stat -c %s bf16.h5) bytes, its FP8 file $(stat -c %s bf16_fp8.h5) bytes"
[ "$(stat -c %s bf16_fp8.h5)" -lt "$(stat -c %s bf16.h5)" ] || fail "the FP8 file is not smaller"

"$FRESCO" convert --help > help.txt
for phrase in "--dtype fp8 writes an FP8 weights file" "IN may then also be a Fresco weights file" \
  "--fp8-bf16-steps and --lora need the bf16" "keep (every tensor in its stored dtype) or fp8"; do
  grep -q -- "$phrase" help.txt || { cat help.txt; fail "convert --help lacks '$phrase'"; }
done
echo "fp8 weights ($backend): ok"
