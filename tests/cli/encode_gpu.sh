# `fresco encode` on the CUDA backend (skipped with exit 77 where there is none): the tiny
# encoders' embeddings on the GPU equal the CPU's in f32 (1e-5) and stay close in bf16 (5e-2,
# the CPU's bf16 is 3.9e-3 from f32); then the full-size encoders (t5-xxl, clip-l, random
# weights, bf16, 512 tokens) once, with their timing line (issue 29's numbers). Also generate
# --prompts prompts.txt on the GPU against encode then generate, bit for bit.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
grep -q "^backend cuda" info.txt || { echo "SKIP: no CUDA backend here"; exit 77; }
TOK=$(dirname "$0")/../data/tokenizers
"$FRESCO" init-weights --model t5-tiny --seed 1 t5.h5 >/dev/null
"$FRESCO" init-weights --model clip-tiny --seed 2 clip.h5 >/dev/null
printf 'a red fox in the snow\nUn café à Paris, 2048×2048 🦊\n' > prompts.txt
enc() { "$FRESCO" encode --t5 t5.h5 --clip clip.h5 --tokenizers "$TOK" --t5-tokens 24 "$@" >/dev/null; }
enc --backend cpu --dtype f32 prompts.txt cpu.h5
enc --backend cuda --dtype f32 prompts.txt gpu.h5
enc --backend cuda --dtype bf16 prompts.txt gpu16.h5
for d in /prompts/0/txt /prompts/1/txt /prompts/0/y /prompts/1/y; do
  "$H5_TOOL" compare gpu.h5 cpu.h5 "$d" 1e-5 || fail "GPU f32 differs from the CPU in $d"
  "$H5_TOOL" compare gpu16.h5 cpu.h5 "$d" 5e-2 || fail "GPU bf16 far from the CPU's f32 in $d"
done
# generate from the text on the GPU (default dtype: bf16 encoders) equals encode --backend cuda
# --dtype bf16 then generate from that batch, embeddings and latents bit for bit.
"$FRESCO" init-weights --model flux-tiny --seed 3 flux.h5 >/dev/null
gen() { "$FRESCO" generate --weights flux.h5 --backend cuda --width 64 --height 48 --steps 2 "$@" >/dev/null; }
gen --prompts gpu16.h5 --out from_batch
gen --t5 t5.h5 --clip clip.h5 --tokenizers "$TOK" --t5-tokens 24 --prompts prompts.txt --out from_text
for i in 0 1; do
  "$H5_TOOL" compare from_text/img_$i.h5 from_batch/img_$i.h5 /latent 0 || fail "GPU generate from text, image $i"
  "$H5_TOOL" compare from_text/prompts.h5 gpu16.h5 /prompts/$i/txt 0 || fail "GPU generate's encoding of prompt $i"
done
for i in 1 2 3 4 5 6; do echo "prompt $i: a red fox in the snow"; done > six.txt
"$FRESCO" encode --t5 random:1 --clip random:2 --tokenizers "$TOK" --backend cuda --dtype bf16 six.txt full.h5 \
  | grep "fresco encode:"
[ "$("$H5_TOOL" shape full.h5 /prompts/5/txt)" = "[512, 4096]" ] || fail "full-size txt shape"
echo "ok: encode on the GPU"
