# Qwen-Image (docs/qwen-image.md) on the qwen-tiny preset against the independent float64
# PyTorch reference (tests/golden/make_qwen_golden.py): `fresco forward` in f32 (1e-5 relative
# L2) and bf16 (bf16's tolerance, 3e-2, and above 1e-4: it really ran in bf16); on NP > 1 ranks
# every sequence-parallel layout (37 rows: uneven shards; 2 heads padded when U = 4) and
# DistriFusion's patches equal one rank; init-weights, a PEFT LoRA, the fp8 refusal.
# QWEN_BACKEND=cuda runs the same on the GPU.
source "$(dirname "$0")/common.sh"
NP=${1:-1}
BACKEND=${QWEN_BACKEND:-cpu}
W=$GOLDEN_DIR/qwen_tiny_weights.h5
IN=$GOLDEN_DIR/qwen_tiny_inputs.h5
REF=$GOLDEN_DIR/qwen_tiny_velocity.h5
"$FRESCO" forward --backend "$BACKEND" --dtype f32 --weights "$W" --inputs "$IN" --out single.h5 >/dev/null
echo "f32 vs float64 reference: $("$H5_TOOL" compare single.h5 "$REF" /velocity 1e-5)"
"$H5_TOOL" compare single.h5 "$REF" /velocity 1e-5 >/dev/null || fail "f32 forward differs from the reference"

if [ "$NP" -eq 1 ]; then
  "$FRESCO" forward --backend "$BACKEND" --dtype bf16 --weights "$W" --inputs "$IN" --out bf16.h5 >/dev/null
  err=$("$FRESCO" compare bf16.h5 "$REF" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}')
  echo "bf16 vs float64 reference: relative L2 $err"
  awk -v a="$err" 'BEGIN { exit !(a < 3e-2 && a > 1e-4) }' || fail "bf16 forward error $err not within (1e-4, 3e-2)"
  # Not yet for Qwen-Image: a named refusal, not a wrong result.
  expect_error "--dtype fp8 is not yet for qwen-image" -- \
    "$FRESCO" forward --backend "$BACKEND" --dtype fp8 --weights "$W" --inputs "$IN" --out x.h5
  # init-weights draws the preset's table (diffusers names); random:SEED is the same weights.
  "$FRESCO" init-weights --model qwen-tiny --seed 5 tiny.h5 >/dev/null
  "$FRESCO" forward --backend "$BACKEND" --weights tiny.h5 --inputs "$IN" --out file.h5 >/dev/null
  "$FRESCO" forward --backend "$BACKEND" --weights random:5 --model qwen-tiny --inputs "$IN" --out random.h5 >/dev/null
  "$H5_TOOL" compare file.h5 random.h5 /velocity 1e-5 || fail "random:5 differs from init-weights --seed 5"
  # A diffusers/PEFT LoRA: its module names are the weight table's keys, merged at load as an
  # independent numpy merge (tests/checkpoints/lora_fixture.py) does beforehand.
  FIXTURE="/usr/bin/python3 $(dirname "$0")/../checkpoints/lora_fixture.py"
  $FIXTURE write-qwen "$W" style.safetensors
  $FIXTURE merge-qwen "$W" style.safetensors 0.6 merged.h5
  "$FRESCO" forward --backend "$BACKEND" --weights "$W" --inputs "$IN" --out lora.h5 --lora style.safetensors:0.6 >/dev/null
  "$FRESCO" forward --backend "$BACKEND" --weights merged.h5 --inputs "$IN" --out merged_out.h5 >/dev/null
  "$H5_TOOL" compare lora.h5 merged_out.h5 /velocity 1e-6 || fail "forward --lora differs from the merged weights"
  ! "$H5_TOOL" compare lora.h5 single.h5 /velocity 1e-3 >/dev/null || fail "the LoRA changed nothing"
  exit 0
fi

case $NP in
  2) layouts="2x1 1x2" ;;
  4) layouts="2x1 1x2 4x1 1x4 2x2" ;;
esac
for lay in $layouts; do
  U=${lay%x*} R=${lay#*x}
  run_np "$NP" forward --backend "$BACKEND" --weights "$W" --inputs "$IN" --out "fw_$lay.h5" --ulysses "$U" --ring "$R" >/dev/null
  echo "np $NP, Ulysses $U x Ring $R: $("$H5_TOOL" compare "fw_$lay.h5" single.h5 /velocity 1e-5)"
  "$H5_TOOL" compare "fw_$lay.h5" single.h5 /velocity 1e-5 >/dev/null || fail "Ulysses $U x Ring $R differs from one rank"
done
# DistriFusion: a forward is its warm-up (exact) step; 5 grid rows split into bands.
run_np "$NP" forward --backend "$BACKEND" --weights "$W" --inputs "$IN" --out patch.h5 --parallel patch >/dev/null
echo "np $NP, patch: $("$H5_TOOL" compare patch.h5 single.h5 /velocity 1e-5)"
"$H5_TOOL" compare patch.h5 single.h5 /velocity 1e-5 >/dev/null || fail "patch-parallel forward differs from one rank"
