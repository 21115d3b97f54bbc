# Data-parallel generate: NP ranks produce the same files as one rank; the same seed gives
# the same bits twice; provenance attributes are present.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
make_tiny_fixtures 5
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out ref >/dev/null
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out par | tee par.log
grep -q "image 5/5 done" par.log || fail "rank 0 did not report every image"
for i in 0 1 2 3 4; do
  "$H5_TOOL" compare "par/img_$i.h5" "ref/img_$i.h5" /latent 0
done
# Different images differ (the seed is per image).
! "$H5_TOOL" compare par/img_0.h5 par/img_1.h5 /latent 0 >/dev/null || fail "images 0 and 1 are equal"
# Provenance.
for attr in seed steps width height guidance model fresco_version command_line ranks seconds_per_step; do
  "$H5_TOOL" attr par/img_3.h5 "$attr" >/dev/null || fail "img_3.h5 lacks attribute $attr"
done
[ "$("$H5_TOOL" attr par/img_3.h5 ranks)" = "$NP" ] || fail "ranks attribute is not $NP"
[ "$("$H5_TOOL" attr par/img_3.h5 seed)" = 3 ] || fail "seed of image 3 is not 3"
[ "$("$H5_TOOL" attr par/img_3.h5 model)" = flux-tiny ] || fail "model attribute is not flux-tiny"
[ "$("$H5_TOOL" shape par/img_0.h5 /latent)" = "[16, 6, 8]" ] || fail "latent shape is not [16, 6, 8]"
ls par | grep -v '^img_[0-4]\.h5$' && fail "unexpected files in the output directory"
echo "generate at np $NP: identical to np 1"
