# What a night batch needs around the engine (issue 25), on NP ranks:
#  - a latents-only batch gets its pictures by re-running with --vae: the saved latents are
#    decoded, none is denoised again, and the pictures equal those of a batch run with --vae
#    from the start;
#  - --max-hours stops at a step boundary before the limit with the stop signal's status (7)
#    and message, and the same command without it finishes the batch bit for bit;
#  - the end-of-run block and the image lines say what ran.
source "$(dirname "$0")/common.sh"
NP=${1:-1}
make_tiny_fixtures 3
"$FRESCO" init-weights --model ae-tiny --seed 2 ae.h5 >/dev/null
gen() { run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 "$@"; }

"$H5_TOOL" setstr prompts.h5 /prompts/1 text "a red fox in the snow, ünïcode"
gen --out direct --vae ae.h5 > direct.log
grep -q "resolved: cpu backend, f32 activations; images: 3 x (64x48, 3 steps, guidance 3.5);" direct.log ||
  { cat direct.log; fail "the resolved settings are not printed"; }
[ "$("$H5_TOOL" attr direct/img_1.h5 prompt)" = "a red fox in the snow, ünïcode" ] || fail "the prompt's text is not in the result"
grep -aq "a red fox in the snow, ünïcode" direct/img_1.png || fail "the prompt's text is not in the PNG"
grep -q "image 3/3 done (img_[0-9], 64x48, 3 steps" direct.log || { cat direct.log; fail "image lines lack size and steps"; }
grep -q "run summary: .* 3 image(s) denoised, 0 decoded from saved latents, .* images/hour" direct.log ||
  { cat direct.log; fail "no end-of-run block"; }

gen --out later > /dev/null
for i in 0 1 2; do "$H5_TOOL" shape later/img_$i.h5 /image 2>/dev/null && fail "latents-only run wrote /image"; done
cp later/img_0.h5 latent_before.h5
gen --out later --vae ae.h5 > later.log
grep -q "0 to denoise, 3 to decode from their saved latent" later.log || { cat later.log; fail "the saved latents were not decoded"; }
grep -q "computing it again" later.log && { cat later.log; fail "a finished latent was denoised again"; }
for i in 0 1 2; do
  "$H5_TOOL" compare later/img_$i.h5 direct/img_$i.h5 /image 0 || fail "image $i: the decoded picture differs"
  [ -s later/img_$i.png ] || fail "later/img_$i.png missing"
done
"$H5_TOOL" compare later/img_0.h5 latent_before.h5 /latent 0 || fail "the saved latent changed"
gen --out later --vae ae.h5 > again.log
grep -q "0 to denoise, 0 to decode" again.log || { cat again.log; fail "a complete batch is not left alone"; }
echo "ok: a latents-only batch gets its pictures without denoising again"

rc=0
gen --out limited --max-hours 0.000001 > limited.log 2>&1 || rc=$?
[ "$rc" -eq 7 ] || { cat limited.log; fail "--max-hours: exit status $rc, expected 7"; }
grep -q "stopped by --max-hours" limited.log || { cat limited.log; fail "--max-hours: no message"; }
gen --out limited > /dev/null
for i in 0 1 2; do "$H5_TOOL" compare limited/img_$i.h5 direct/img_$i.h5 /latent 0 || fail "image $i after --max-hours"; done
echo "ok: --max-hours stops at a step boundary (status 7) and the batch resumes bit for bit"
