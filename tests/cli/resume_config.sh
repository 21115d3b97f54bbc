# Resume trusts nothing stale: a result made with other weights, another prompt entry or
# other settings, or one that does not open (0 bytes), is computed again, and each is named.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
make_tiny_fixtures 3
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out out >/dev/null
[ "$("$H5_TOOL" attr out/img_0.h5 format_version)" = 2 ] || fail "image results are not format version 2"

# Other settings (seed): every image is redone and equals a fresh run of that configuration.
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out out --seed 7 | tee seed.log
[ "$(grep -c "was made with other settings than this run; computing it again" seed.log)" -eq 3 ] \
  || fail "resume with another seed did not redo each image"
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out fresh --seed 7 >/dev/null
for i in 0 1 2; do "$H5_TOOL" compare "out/img_$i.h5" "fresh/img_$i.h5" /latent 0; done

# Other weights.
"$FRESCO" init-weights --model flux-tiny --seed 4 other.h5 >/dev/null
run_np "$NP" generate --weights other.h5 --prompts prompts.h5 --out out --seed 7 | tee weights.log
grep -q "img_1.h5 was made with other weights than this run" weights.log || fail "other weights not noticed"

# Another prompt entry (same shapes, other values), and a 0-byte result.
"$FRESCO" make-prompts --model flux-tiny --count 3 --txt-len 5 --width 64 --height 48 --steps 3 \
  --seed 99 other_prompts.h5 >/dev/null
run_np "$NP" generate --weights other.h5 --prompts other_prompts.h5 --out out --seed 7 | tee prompt.log
grep -q "img_2.h5 was made with other prompt than this run" prompt.log || fail "another prompt not noticed"
: > out/img_1.h5
run_np "$NP" generate --weights other.h5 --prompts other_prompts.h5 --out out --seed 7 | tee empty.log
grep -q "img_1.h5 does not open" empty.log || fail "a 0-byte result was trusted"
grep -q "2 image(s) already done, 1 to compute" empty.log || fail "the good results were not kept"
# The same configuration again: nothing to do.
run_np "$NP" generate --weights other.h5 --prompts other_prompts.h5 --out out --seed 7 | tee same.log
grep -q "3 image(s) already done, 0 to compute" same.log || fail "a matching result was redone"
echo "resume into another configuration at np $NP: ok"
