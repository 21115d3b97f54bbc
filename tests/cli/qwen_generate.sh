# `fresco generate` with Qwen-Image end to end on qwen-tiny: precomputed prompt embeddings of two
# lengths (3584-wide in the real preset, 48 here; no pooled vector, so no /y), the pipeline's
# shifted schedule (DenoiserSpec::timesteps), latents written (its VAE is not in Fresco: --vae is
# refused, not faked), the same bits twice, and on NP ranks every image equal to one rank's.
source "$(dirname "$0")/common.sh"
NP=${1:-1}
"$FRESCO" init-weights --model qwen-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model qwen-tiny --count 2 --txt-len 5 --width 64 --height 48 --steps 3 short.h5 >/dev/null
! "$H5_TOOL" shape short.h5 /prompts/0/y >/dev/null 2>&1 || fail "a Qwen-Image prompt file has a pooled vector"
[ "$("$H5_TOOL" shape short.h5 /prompts/0/txt)" = "[5, 48]" ] || fail "prompt embeddings are not [5, 48]"

if [ "$NP" -eq 1 ]; then
  run_np 1 generate --weights weights.h5 --prompts short.h5 --out one > one.log
  grep -q "writing latents only" one.log || { cat one.log; fail "latents only not reported"; }
  [ "$("$H5_TOOL" shape one/img_0.h5 /latent)" = "[16, 6, 8]" ] || fail "latent shape is not [16, 6, 8]"
  [ "$("$H5_TOOL" attr one/img_0.h5 steps)" = "3" ] || fail "steps attribute"
  run_np 1 generate --weights weights.h5 --prompts short.h5 --out again >/dev/null
  "$H5_TOOL" compare one/img_1.h5 again/img_1.h5 /latent 0 || fail "generate is not deterministic"
  ! "$H5_TOOL" compare one/img_0.h5 one/img_1.h5 /latent 0 >/dev/null || fail "images 0 and 1 are equal"
  "$FRESCO" init-weights --model ae-tiny vae.h5 >/dev/null
  expect_error "need the Qwen-Image VAE decoder, which Fresco does not have yet" -- \
    "$FRESCO" generate --weights weights.h5 --prompts short.h5 --out x --vae vae.h5
  expect_error "step caching (--cache) is not yet for qwen-image" -- \
    "$FRESCO" generate --weights weights.h5 --prompts short.h5 --out y --cache fbcache
  # A FLUX prompt file (4096-wide text, a pooled vector) is refused by width.
  "$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 flux.h5 >/dev/null
  expect_error "qwen-tiny expects text embeddings \[Ltxt, 48\]" -- \
    "$FRESCO" generate --weights weights.h5 --prompts flux.h5 --out z
  exit 0
fi

# A longer prompt of 7 tokens: 7 + 12 rows divide neither 2 nor 4 ranks.
"$FRESCO" make-prompts --model qwen-tiny --count 2 --txt-len 7 --width 64 --height 48 --steps 3 long.h5 >/dev/null
run_np 1 generate --weights weights.h5 --prompts long.h5 --out ref >/dev/null
case $NP in
  2) layouts="2x1 1x2" ;;
  4) layouts="4x1 2x2 1x4" ;;
esac
for lay in $layouts; do
  U=${lay%x*} R=${lay#*x}
  run_np "$NP" generate --weights weights.h5 --prompts long.h5 --out "gen_$lay" --ulysses "$U" --ring "$R" >/dev/null
  for i in 0 1; do
    "$H5_TOOL" compare "gen_$lay/img_$i.h5" "ref/img_$i.h5" /latent 1e-5 >/dev/null || fail "generate $lay image $i differs"
  done
  echo "generate np $NP, Ulysses $U x Ring $R: 2 images equal one rank's"
done
