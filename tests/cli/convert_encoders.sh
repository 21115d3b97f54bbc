# `fresco convert` of the text encoders' HF safetensors: CLIP's buffer
# text_model.embeddings.position_ids (saved by older transformers) and T5's
# encoder.embed_tokens.weight beside shared.weight (the tied copy) are left out and named in
# convert's output, and the rest converts to the weights it came from, bit for bit. An
# embed_tokens of another shape than shared.weight, and an integer tensor where a weight belongs,
# are refused. The checkpoints are Fresco's random weights written out under their HF names
# (tests/checkpoints/write_layouts.py's writer), plus those tensors.
source "$(dirname "$0")/common.sh"
CHECKPOINTS=$(cd "$(dirname "$0")/../checkpoints" && pwd)
same() { /usr/bin/python3 "$CHECKPOINTS/write_layouts.py" compare "$1" "$2" || fail "$1 is not $2 bit for bit"; }

"$FRESCO" init-weights --model t5-tiny --seed 1 --dtype f32 t5.h5 >/dev/null
"$FRESCO" init-weights --model clip-tiny --seed 2 --dtype f16 clip.h5 >/dev/null
/usr/bin/python3 - "$CHECKPOINTS" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from write_layouts import read_weights, write_safetensors
t5, clip = read_weights("t5.h5"), read_weights("clip.h5")
shared = t5["shared.weight"]
write_safetensors("t5_plain.safetensors", t5)
write_safetensors("t5_tied.safetensors", {**t5, "encoder.embed_tokens.weight": shared.copy()})
write_safetensors("t5_other.safetensors", {**t5, "encoder.embed_tokens.weight": shared[:-1].copy()})
positions = clip["text_model.embeddings.position_embedding.weight"].shape[0]
ids = np.arange(positions, dtype=np.int64)[None]  # [1, positions], as transformers saved it
write_safetensors("clip_old.safetensors", {**clip, "text_model.embeddings.position_ids": ids})
norm = clip["text_model.final_layer_norm.weight"]
write_safetensors("clip_int.safetensors", {**clip, "text_model.final_layer_norm.weight": norm.astype(np.int64)})
PY

"$FRESCO" convert t5_tied.safetensors t5_tied.h5 | tee out.log
grep -q "preset t5-tiny; .*left out encoder.embed_tokens.weight (tied to shared.weight)" out.log \
  || fail "the tied T5 embedding is not reported"
same t5_tied.h5 t5.h5
"$FRESCO" convert clip_old.safetensors clip_old.h5 | tee out.log
grep -q "preset clip-tiny; .*left out text_model.embeddings.position_ids (a buffer of position ids, not a weight)" \
  out.log || fail "CLIP's position_ids buffer is not reported"
same clip_old.h5 clip.h5
"$FRESCO" convert t5_plain.safetensors t5_plain.h5 | tee out.log
grep -q "left out" out.log && fail "a checkpoint without extras reports one"
same t5_plain.h5 t5.h5

expect_error "unexpected tensor encoder.embed_tokens.weight" -- "$FRESCO" convert --model t5-tiny t5_other.safetensors out.h5
expect_error "text_model.final_layer_norm.weight is stored as int64" -- \
  "$FRESCO" convert --model clip-tiny clip_int.safetensors out.h5
[ ! -e out.h5 ] || fail "a refused convert left an output"
echo "convert of the text encoders' extras: ok"
