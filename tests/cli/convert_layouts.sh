# The checkpoint layouts users have convert to exactly the weights they came from (bit for bit):
# Fresco's random weights written back out (tests/checkpoints/write_layouts.py, an independent
# inverse of the renaming) in the original release's names, under ComfyUI's prefix, and in
# diffusers' folder layout, sharded with an index (transformer) or one file (autoencoder).
# A sharded checkpoint with a missing shard, or an index that maps a key to a shard lacking it,
# is refused naming the shard and the key.
source "$(dirname "$0")/common.sh"
LAYOUTS="/usr/bin/python3 $(dirname "$0")/../checkpoints/write_layouts.py"
same() { $LAYOUTS compare "$1" "$2" || fail "$1 is not $2 bit for bit"; }

"$FRESCO" init-weights --model flux-tiny --seed 5 --dtype f32 flux.h5 >/dev/null
"$FRESCO" init-weights --model ae-tiny --seed 6 --dtype f16 ae.h5 >/dev/null
$LAYOUTS flux.h5 flux --shards 3
$LAYOUTS flux.h5 comfy --shards 2 --prefix model.diffusion_model.
$LAYOUTS ae.h5 ae --shards 1

"$FRESCO" convert flux/diffusers from_diffusers.h5 > out.log
grep -q "preset flux-tiny; diffusers layout, 3 shards" out.log || { cat out.log; fail "convert does not say what it read"; }
same from_diffusers.h5 flux.h5
# The index itself, and the folder two levels up as the diffusers folder's file list would give.
"$FRESCO" convert flux/diffusers/diffusion_pytorch_model.safetensors.index.json from_index.h5 >/dev/null
same from_index.h5 flux.h5
"$FRESCO" convert flux/original.safetensors from_original.h5 >/dev/null
same from_original.h5 flux.h5
"$FRESCO" convert comfy/original.safetensors from_comfy.h5 > out.log
grep -q "keys under model.diffusion_model., prefix removed" out.log || fail "the prefix is not reported"
same from_comfy.h5 flux.h5
# Qwen-Image's sharded diffusers checkpoint: the names as stored (docs/qwen-image.md).
"$FRESCO" init-weights --model qwen-tiny --seed 7 --dtype f32 qwen.h5 >/dev/null
$LAYOUTS qwen.h5 qwen --shards 3
"$FRESCO" convert qwen/diffusers from_qwen.h5 > out.log
grep -q "preset qwen-tiny; diffusers layout, 3 shards" out.log || { cat out.log; fail "Qwen-Image layout not reported"; }
same from_qwen.h5 qwen.h5
"$FRESCO" convert ae/diffusers ae_from_diffusers.h5 > out.log
grep -q "preset ae-tiny; diffusers layout" out.log || { cat out.log; fail "autoencoder layout not reported"; }
same ae_from_diffusers.h5 ae.h5
"$FRESCO" convert ae/original.safetensors ae_from_original.h5 >/dev/null
same ae_from_original.h5 ae.h5
# --model names the preset to check against: a diffusers flux-tiny is not flux-small.
expect_error "does not match preset flux-small" -- "$FRESCO" convert --model flux-small flux/diffusers out.h5
grep -q "it looks like flux-tiny" err.log || fail "the preset it matches is not named"

# A missing shard: named, with the keys mapped to it.
cp -r flux/diffusers broken
rm broken/diffusion_pytorch_model-00002-of-00003.safetensors
expect_error "to shard diffusion_pytorch_model-00002-of-00003.safetensors, which is missing" -- \
  "$FRESCO" convert broken out.h5
[ ! -e out.h5 ] || fail "convert left an output"
# A key mapped to a shard that does not hold it.
rm -rf broken; cp -r flux/diffusers broken
/usr/bin/python3 - broken/diffusion_pytorch_model.safetensors.index.json <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
wm = index["weight_map"]
key = next(k for k, v in sorted(wm.items()) if v.endswith("00001-of-00003.safetensors"))
wm[key] = "diffusion_pytorch_model-00002-of-00003.safetensors"
json.dump(index, open(sys.argv[1], "w"))
print(key)
PY
expect_error "maps tensor .* to shard diffusion_pytorch_model-00002-of-00003.safetensors, which does not hold it" -- \
  "$FRESCO" convert broken out.h5
# A renamed tensor that matches nothing is named as unexpected (diffusers' name).
rm -rf broken; cp -r ae/diffusers broken
sed -i 's/decoder.conv_norm_out.weight/decoder.conv_norm_out.wheight/' broken/diffusion_pytorch_model.safetensors
expect_error "decoder.conv_norm_out.wheight" -- "$FRESCO" convert --model ae-tiny broken out.h5
echo "convert_layouts: ok"
