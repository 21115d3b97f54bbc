# Images of equal token count but other aspect ratios in one batch, on 4 ranks (np 4): 512x144
# and 768x96 are both 288 tokens; on 4 patches rank 0 holds 96 tokens of both while the others
# go from 64/64/64 to 96/48/48, so only some ranks see their own shape change. Every rank must
# plan the second image anew (and, on GPU ranks, capture again together: tests/cli/gpu_ranks.sh);
# each image of the mixed batch equals the same image computed alone, bit for bit, for the patch
# and the sequence methods, with the run record's per-image sizes as given.
source "$(dirname "$0")/common.sh"
NP=${1:-4}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 512 --height 144 --steps 3 mixed.h5 >/dev/null
"$H5_TOOL" setint mixed.h5 /prompts/1 width 768
"$H5_TOOL" setint mixed.h5 /prompts/1 height 96
for m in "--parallel patch --patches $NP --warmup-steps 1" "--ulysses $NP"; do
  tag=$(echo "$m" | tr -dc 'a-z0-9')
  # shellcheck disable=SC2086
  run_np "$NP" generate --weights weights.h5 --prompts mixed.h5 $m --out "mixed_$tag" --record "mixed_$tag.json" \
    >/dev/null
  # shellcheck disable=SC2086
  run_np "$NP" generate --weights weights.h5 --prompts mixed.h5 $m --slice 1/2 --out "alone_$tag" >/dev/null
  "$H5_TOOL" compare "mixed_$tag/img_1.h5" "alone_$tag/img_1.h5" /latent 0 ||
    fail "$m: image 1 after an image of another aspect ratio differs from image 1 alone"
  grep -q '"width": 768' "mixed_$tag.json" || { cat "mixed_$tag.json"; fail "$m: the run record lacks image 1's width"; }
  echo "ok: $m: mixed aspect ratios of equal token count"
done
