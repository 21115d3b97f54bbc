# --lora on generate, forward and bench: a forward with a LoRA (kohya and diffusers/PEFT pairs in
# one file, scale 0.6) equals the forward of weights merged by an independent numpy script;
# scale 0 leaves the weights' bits; the LoRA's digest and scale are in the image's provenance, the
# run record and the resume digest (another scale recomputes the images); unmatched keys, bad
# scales and missing files are named. LORA_BACKEND=cuda (gpu_backend.sh) runs the forward checks
# on the GPU: the merged weights uploaded, in f32.
source "$(dirname "$0")/common.sh"
BACKEND=${LORA_BACKEND:-cpu}
FIXTURE="/usr/bin/python3 $(dirname "$0")/../checkpoints/lora_fixture.py"
make_tiny_fixtures 2
$FIXTURE write weights.h5 style.safetensors
$FIXTURE merge weights.h5 style.safetensors 0.6 merged.h5

# forward: the merge at load equals the weights merged beforehand (f32 rounding apart).
"$FRESCO" forward --backend $BACKEND --dtype f32 --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" \
  --out lora.h5 --lora style.safetensors:0.6 > forward.log
"$FRESCO" forward --backend $BACKEND --dtype f32 --weights merged.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" \
  --out merged_out.h5 > /dev/null
"$H5_TOOL" compare lora.h5 merged_out.h5 /velocity 1e-6 || fail "forward --lora differs from the merged weights"
"$FRESCO" forward --backend $BACKEND --dtype f32 --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out plain.h5 > /dev/null
if "$H5_TOOL" compare lora.h5 plain.h5 /velocity 1e-3 > /dev/null; then fail "the LoRA changed nothing"; fi
"$FRESCO" forward --backend $BACKEND --dtype f32 --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" \
  --out zero.h5 --lora style.safetensors:0 > /dev/null
"$H5_TOOL" compare zero.h5 plain.h5 /velocity 0 || fail "scale 0 is not the weights themselves"

# generate: provenance, run record, resume digest.
"$FRESCO" generate --backend cpu --weights weights.h5 --prompts prompts.h5 --out out --steps 2 \
  --lora style.safetensors:0.6 --record record.json > gen.log
"$H5_TOOL" attr out/img_0.h5 lora > lora_attr.txt
grep -q "style.safetensors (digest [0-9a-f]\{16\}, 3 pairs) x 0.6" lora_attr.txt || { cat lora_attr.txt; fail "provenance lacks the LoRA"; }
/usr/bin/python3 - record.json <<'PY' || fail "the run record lacks the LoRA"
import json, sys
lora = json.load(open(sys.argv[1]))["engine"]["lora"]
assert len(lora) == 1 and lora[0]["scale"] == 0.6 and lora[0]["pairs"] == 3 and len(lora[0]["digest"]) == 16, lora
PY
"$FRESCO" generate --backend cpu --weights weights.h5 --prompts prompts.h5 --out out --steps 2 \
  --lora style.safetensors:0.6 > again.log
grep -q "2 image(s) already done, 0 to compute" again.log || { cat again.log; fail "the same LoRA did not resume"; }
"$FRESCO" generate --backend cpu --weights weights.h5 --prompts prompts.h5 --out out --steps 2 \
  --lora style.safetensors:0.3 > other.log 2>&1 || true
if grep -q "2 image(s) already done" other.log; then fail "another LoRA scale reused the images"; fi

# bench takes it too.
"$FRESCO" bench --backend cpu --model flux-tiny --weights weights.h5 --width 32 --height 32 --txt-len 3 --steps 5 \
  --lora style.safetensors > bench.log || { cat bench.log; fail "bench --lora"; }

# Errors: a bad scale, a missing file, random weights, a key that matches nothing.
expect_error "option --lora style.safetensors:abc: the scale after ':' must be a finite number" -- \
  "$FRESCO" forward --backend cpu --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out x.h5 \
  --lora style.safetensors:abc
expect_error "option --lora nothere.safetensors: nothere.safetensors is not a file" -- \
  "$FRESCO" generate --backend cpu --weights weights.h5 --prompts prompts.h5 --out x --lora nothere.safetensors
expect_error "--lora needs a weights file" -- \
  "$FRESCO" bench --backend cpu --model flux-tiny --weights random:1 --width 32 --height 32 --txt-len 3 --steps 5 \
  --lora style.safetensors
/usr/bin/python3 -c "
import sys; sys.path.insert(0, '$(dirname "$0")/../checkpoints')
from lora_fixture import read_safetensors
from write_layouts import write_safetensors
t = dict(read_safetensors('style.safetensors'))
t['lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight'] = t['transformer.transformer_blocks.0.attn.to_v.lora_B.weight']
t['lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight'] = t['transformer.transformer_blocks.0.attn.to_v.lora_A.weight']
write_safetensors('te.safetensors', t)"
expect_error "te.safetensors: lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight (no tensor of flux-tiny has this name)" -- \
  "$FRESCO" forward --backend cpu --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out x.h5 \
  --lora te.safetensors
"$FRESCO" forward --backend $BACKEND --dtype f32 --weights weights.h5 --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out warned.h5 \
  --lora te.safetensors:0.6 --lora-unmatched warn > warn.log 2>&1 || { cat warn.log; fail "--lora-unmatched warn"; }
grep -q "warning: LoRA key not merged (--lora-unmatched warn): te.safetensors: lora_te1_" warn.log || fail "no warning"
"$H5_TOOL" compare warned.h5 lora.h5 /velocity 0 || fail "the matched pairs of a warned file are not merged alike"
"$FRESCO" generate --help > help.txt
grep -q -- "--lora arg .*FILE\[:SCALE\]" help.txt || fail "generate --help does not explain --lora"
echo "lora: ok"
