# `generate --prompts prompts.txt` on NP ranks (the text encoders inside generate): the same bits
# as `fresco encode` then `generate` from its batch, the text in the results and the run record,
# resume (unchanged text: nothing computed again; one changed prompt or other encoder weights:
# those images again), and the refusals, each reported once.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
TOK=$(dirname "$0")/../data/tokenizers
"$FRESCO" init-weights --model t5-tiny --seed 1 t5.h5 >/dev/null
"$FRESCO" init-weights --model clip-tiny --seed 2 clip.h5 >/dev/null
"$FRESCO" init-weights --model clip-tiny --seed 5 clip5.h5 >/dev/null
"$FRESCO" init-weights --model flux-tiny --seed 3 flux.h5 >/dev/null
ENC=(--t5 t5.h5 --clip clip.h5 --tokenizers "$TOK" --t5-tokens 24)
GEN=(generate --weights flux.h5 --width 64 --height 48 --steps 2)
printf 'a red fox in the snow\nUn café à Paris 🦊\n\nthree small boats\n' > prompts.txt

# Encoded first, then generated from the batch; and the text straight into generate.
"$FRESCO" encode "${ENC[@]}" prompts.txt batch.h5 >/dev/null
run_np "$NP" "${GEN[@]}" --prompts batch.h5 --out from_batch >/dev/null
run_np "$NP" "${GEN[@]}" "${ENC[@]}" --prompts prompts.txt --out from_text --record run.json | tee text.log
grep -q "fresco generate: wrote from_text/prompts.h5 (3 prompts; t5-tiny with 24 T5 tokens, clip-tiny; cpu f32" \
  text.log || fail "generate's encoding line"
for i in 0 1 2; do
  "$H5_TOOL" compare "from_text/img_$i.h5" "from_batch/img_$i.h5" /latent 0 >/dev/null \
    || fail "image $i from the text differs from encode + generate"
  for d in txt y; do
    "$H5_TOOL" compare from_text/prompts.h5 batch.h5 "/prompts/$i/$d" 0 >/dev/null || fail "embedding /prompts/$i/$d"
  done
done
"$H5_TOOL" compare from_text/img_0.h5 from_text/img_1.h5 /latent 1e-3 >/dev/null && fail "two prompts, one image"
[ "$("$H5_TOOL" attr from_text/img_1.h5 prompt)" = "Un café à Paris 🦊" ] || fail "the text in the result"
grep -q '"prompt": "three small boats"' run.json || fail "the text in the run record"

# A JSONL list: its per-prompt settings reach the images, as from encode's batch.
printf '%s\n' '{"prompt": "a red fox", "seed": 11, "width": 32, "height": 16, "steps": 2}' \
  '{"prompt": "a boat", "width": 32, "height": 32, "steps": 1}' > prompts.jsonl
run_np "$NP" generate --weights flux.h5 "${ENC[@]}" --prompts prompts.jsonl --out from_jsonl >/dev/null
[ "$("$H5_TOOL" attr from_jsonl/img_0.h5 seed)" = 11 ] || fail "JSONL seed"
[ "$("$H5_TOOL" shape from_jsonl/img_0.h5 /latent)" = "[16, 2, 4]" ] || fail "JSONL size"
[ "$("$H5_TOOL" attr from_jsonl/img_1.h5 steps)" = 1 ] || fail "JSONL steps"

# Resume: the same command computes nothing again; one changed prompt, only its image; other
# encoder weights, every image.
run_np "$NP" "${GEN[@]}" "${ENC[@]}" --prompts prompts.txt --out from_text > again.log
grep -q "3 image(s) in this batch, 0 to denoise" again.log || { cat again.log; fail "resume recomputed images"; }
printf 'a red fox in the snow\nUn café à Lyon 🦊\nthree small boats\n' > changed.txt
run_np "$NP" "${GEN[@]}" "${ENC[@]}" --prompts changed.txt --out from_text > changed.log
grep -q "3 image(s) in this batch, 1 to denoise" changed.log || { cat changed.log; fail "a changed prompt"; }
grep -q "image 1: .* computing it again" changed.log || fail "the changed prompt's image is not named"
[ "$("$H5_TOOL" attr from_text/img_1.h5 prompt)" = "Un café à Lyon 🦊" ] || fail "the changed text in the result"
run_np "$NP" "${GEN[@]}" --t5 t5.h5 --clip clip5.h5 --tokenizers "$TOK" --t5-tokens 24 --prompts changed.txt \
  --out from_text > weights.log
grep -q "3 image(s) in this batch, 3 to denoise" weights.log || { cat weights.log; fail "other CLIP weights"; }

# Refusals: a text list without the encoders (saying what to add), the encoders with a batch,
# a list that is not there, some of the encoder options only, and an encoding error on rank 0
# (reported once).
expect_error "prompts.txt is a text prompt list, not a prompt batch (HDF5): add --t5 T5.h5 --clip CLIP.h5 --tokenizers DIR" \
  -- run_np "$NP" "${GEN[@]}" --prompts prompts.txt --out refused
expect_error "batch.h5 is a prompt batch (HDF5), encoded already: leave them out" \
  -- run_np "$NP" "${GEN[@]}" "${ENC[@]}" --prompts batch.h5 --out refused
expect_error "file not found: missing.txt" \
  -- run_np "$NP" "${GEN[@]}" "${ENC[@]}" --prompts missing.txt --out refused
expect_error "options --t5, --clip and --tokenizers go together" \
  -- run_np "$NP" "${GEN[@]}" --t5 t5.h5 --prompts prompts.txt --out refused
expect_error "nowhere/tokenizer_2/spiece.model" \
  -- run_np "$NP" "${GEN[@]}" --t5 t5.h5 --clip clip.h5 --tokenizers nowhere --prompts prompts.txt --out refused
[ -z "$(ls refused 2>/dev/null)" ] || fail "a refused run left files: $(ls refused)"
echo "generate from text at np $NP: identical to encode + generate"
