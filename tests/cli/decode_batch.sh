# `fresco decode` of several files and of a directory on NP ranks, the decoder loaded once: a
# latents-only batch is completed in place (each result keeps its latent and provenance and
# gains the /image and PNG that `generate --vae` writes); bad files among good ones are reported
# by name, left as they were, and the others are still done, with a non-zero status.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
VAE=$GOLDEN_DIR/ae_tiny_weights.h5
make_tiny_fixtures 3
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --vae "$VAE" --out ref >/dev/null
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out lat >/dev/null
cp -r lat orig
cp -r lat dir
cp -r lat mixed

same_as_generate() {  # DIR I: DIR/img_I.h5 is what generate --vae wrote, but for its record of the run
  local f=$1/img_$2.h5
  "$H5_TOOL" compare "$f" "ref/img_$2.h5" /image 1e-5 || fail "$f: picture differs from generate --vae's"
  "$H5_TOOL" compare "$f" "orig/img_$2.h5" /latent 0 || fail "$f: the latent changed"
  for a in digest seed steps model format_version; do
    [ "$("$H5_TOOL" attr "$f" $a)" = "$("$H5_TOOL" attr "orig/img_$2.h5" $a)" ] || fail "$f: attribute $a changed"
  done
  [ "$("$H5_TOOL" attr "$f" vae)" = ae-tiny ] || fail "$f: no vae attribute"
  head -c 8 "$1/img_$2.png" | od -An -c | grep -q "P   N   G" || fail "$1/img_$2.png is not a PNG"
  grep -aq "seed" "$1/img_$2.png" || fail "$1/img_$2.png has no seed text chunk"
}

# Two files of three, in one call.
run_np "$NP" decode --vae "$VAE" lat/img_2.h5 lat/img_0.h5 > files.log
[ "$(grep -c '^fresco decode: wrote' files.log)" = 2 ] || { cat files.log; fail "not two files decoded"; }
grep -q "2 file(s), 0 failed" files.log || { cat files.log; fail "no summary"; }
for i in 0 2; do same_as_generate lat $i; done
[ ! -e lat/img_1.png ] && ! "$H5_TOOL" shape lat/img_1.h5 /image 2>/dev/null || fail "img_1 was decoded too"

# A directory: every img_{i}.h5 in it, and nothing else.
touch dir/img_1.h5.tmp.123 dir/notes.h5
run_np "$NP" decode --vae "$VAE" dir > dir.log
grep -q "3 file(s), 0 failed" dir.log || { cat dir.log; fail "the directory's three results were not decoded"; }
for i in 0 1 2; do same_as_generate dir $i; done

# Bad files among good ones: a truncated one and one whose picture is not finite, each reported
# by name and left as it was; the good one done; the status is the first failure's (2: input).
head -c 1000 lat/img_1.h5 > mixed/img_1.h5
"$H5_TOOL" poison mixed/img_2.h5 /latent
cp mixed/img_1.h5 bad_1.h5
cp mixed/img_2.h5 bad_2.h5
rc=0
run_np "$NP" decode --vae "$VAE" mixed > out.log 2> err.log || rc=$?
[ "$rc" = 2 ] || { cat out.log err.log; fail "status $rc, expected 2 (bad input)"; }
[ "$(grep -c 'fresco: error' err.log)" = 2 ] || { cat err.log; fail "not one error per bad file"; }
grep -q "mixed/img_1.h5" err.log || { cat err.log; fail "the truncated file is not named"; }
grep -q "mixed/img_2.h5: the decoded picture has [0-9]* non-finite values" err.log ||
  { cat err.log; fail "the non-finite picture is not reported"; }
grep -q "3 file(s), 2 failed" out.log || { cat out.log; fail "no summary of the failures"; }
same_as_generate mixed 0
for i in 1 2; do
  cmp -s "mixed/img_$i.h5" "bad_$i.h5" && [ ! -e "mixed/img_$i.png" ] || fail "bad file $i was changed or given a PNG"
done

# --out names the outputs of one file; an empty directory has nothing to decode.
expect_error "--out names the outputs of one file" -- \
  run_np "$NP" decode --vae "$VAE" lat/img_0.h5 lat/img_1.h5 --out x
mkdir empty
expect_error "holds no image result" -- run_np "$NP" decode --vae "$VAE" empty
echo "decode of several files and a directory at np $NP: ok"
