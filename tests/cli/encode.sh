# `fresco encode`: a text file and the same prompts as JSONL give the same embeddings (shapes of
# the presets, the text and the JSONL settings as attributes, different prompts differ, bf16
# close to f32), the batch runs through `generate` on flux-tiny (whose widths are t5-tiny's and
# clip-tiny's) with the text in the result, and wrong inputs are refused with one message. The
# numbers themselves are test_text_encoders' (golden references).
source "$(dirname "$0")/common.sh"
TOK=$(dirname "$0")/../data/tokenizers  # tokenizer/ and tokenizer_2/ as FLUX.1's repository has them
"$FRESCO" init-weights --model t5-tiny --seed 1 t5.h5 >/dev/null
"$FRESCO" init-weights --model clip-tiny --seed 2 clip.h5 >/dev/null
"$FRESCO" init-weights --model flux-tiny --seed 3 flux.h5 >/dev/null
enc() { "$FRESCO" encode --t5 t5.h5 --clip clip.h5 --tokenizers "$TOK" --t5-tokens 24 "$@"; }

printf 'a red fox in the snow\n\n   \nUn café à Paris, 2048×2048 🦊\r\n' > prompts.txt
printf '%s\n' '{"prompt": "a red fox in the snow", "seed": 7, "steps": 2}' '' \
  '{"prompt": "Un café à Paris, 2048×2048 🦊", "width": 64, "height": 48, "guidance": 2.5}' > prompts.jsonl
enc prompts.txt text.h5 | grep -q "wrote text.h5 (2 prompts; t5-tiny with 24 T5 tokens, clip-tiny; cpu f32" \
  || fail "encode's summary line"
enc prompts.jsonl json.h5 > /dev/null
[ "$("$H5_TOOL" shape text.h5 /prompts/0/txt)" = "[24, 32]" ] || fail "txt shape"
[ "$("$H5_TOOL" shape text.h5 /prompts/1/y)" = "[48]" ] || fail "y shape"
"$H5_TOOL" shape text.h5 /prompts/2/txt 2>/dev/null && fail "blank lines became prompts"
[ "$("$H5_TOOL" attr text.h5 text /prompts/1)" = "Un café à Paris, 2048×2048 🦊" ] || fail "the text attribute (CR dropped)"
[ "$("$H5_TOOL" attr json.h5 seed /prompts/0)" = 7 ] || fail "JSONL seed"
[ "$("$H5_TOOL" attr json.h5 guidance /prompts/1)" = 2.5 ] || fail "JSONL guidance"
for d in /prompts/0/txt /prompts/0/y /prompts/1/txt /prompts/1/y; do
  "$H5_TOOL" compare text.h5 json.h5 "$d" 0 > /dev/null || fail "text and JSONL differ in $d"
done
"$H5_TOOL" compare text.h5 text.h5 /prompts/0/y 1e-3 /prompts/1/y > /dev/null && fail "two prompts, one pooled vector"
enc --dtype bf16 prompts.txt bf16.h5 > /dev/null
"$H5_TOOL" compare bf16.h5 text.h5 /prompts/1/txt 5e-2 || fail "bf16 far from f32"
"$H5_TOOL" compare bf16.h5 text.h5 /prompts/1/txt 0 > /dev/null && fail "bf16 equals f32: not a bf16 run"

# Through generate, the text recorded with the image.
"$FRESCO" generate --weights flux.h5 --prompts json.h5 --out gen --width 64 --height 48 --steps 2 > /dev/null
[ "$("$H5_TOOL" attr gen/img_1.h5 prompt)" = "Un café à Paris, 2048×2048 🦊" ] || fail "generate's prompt attribute"

# Wrong inputs: one message each, no output.
printf '{"prompt": "x", "sed": 1}\n' > typo.jsonl
expect_error 'typo.jsonl:1: unknown key "sed"' -- enc typo.jsonl out.h5
printf '{"prompt": "x"}\nnot json\n' > bad.jsonl
expect_error "bad.jsonl:2: not JSON" -- enc bad.jsonl out.h5
printf '{"seed": 1}\n' > noprompt.jsonl
expect_error 'noprompt.jsonl:1: no "prompt" string' -- enc noprompt.jsonl out.h5
printf '{"prompt": "x", "steps": 2.5}\n' > float.jsonl
expect_error '"steps" must be an integer' -- enc float.jsonl out.h5
printf '\n \n' > empty.txt
expect_error "empty.txt holds no prompt" -- enc empty.txt out.h5
expect_error "t5.h5 holds weights of t5-tiny, not of a CLIP encoder" -- \
  "$FRESCO" encode --t5 t5.h5 --clip t5.h5 --tokenizers "$TOK" prompts.txt out.h5
expect_error "nowhere/tokenizer_2/spiece.model" -- \
  "$FRESCO" encode --t5 t5.h5 --clip clip.h5 --tokenizers nowhere prompts.txt out.h5
expect_error "t5-tokens" -- "$FRESCO" encode --t5 t5.h5 --clip clip.h5 --tokenizers "$TOK" --t5-tokens 0 prompts.txt out.h5
[ ! -e out.h5 ] || fail "a refused encode left an output"
echo "encode: ok"
