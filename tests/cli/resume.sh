# Resume: after a stopped run (some results missing, a killed writer's temporary file left
# behind), re-running redoes none of the finished images and completes the rest.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
make_tiny_fixtures 6
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out full >/dev/null
# The stopped run: images 0, 1, 3, 5 finished; 2 and 4 did not; a temp file of 2 remains.
mkdir stopped
for i in 0 1 3 5; do cp -p "full/img_$i.h5" stopped/; done
echo partial > stopped/img_2.h5.tmp.99999
touch -d '2000-01-01' stopped/img_*.h5   # any rewrite would change the time
stat -c '%i %Y' stopped/img_0.h5 stopped/img_1.h5 stopped/img_3.h5 stopped/img_5.h5 > before.txt
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out stopped | tee resume.log
grep -q "4 image(s) already done, 2 to compute" resume.log || fail "resume did not skip the 4 finished images"
stat -c '%i %Y' stopped/img_0.h5 stopped/img_1.h5 stopped/img_3.h5 stopped/img_5.h5 > after.txt
cmp before.txt after.txt || fail "a finished image was rewritten"
for i in 0 1 2 3 4 5; do "$H5_TOOL" compare "stopped/img_$i.h5" "full/img_$i.h5" /latent 0; done
# A third run has nothing to do.
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out stopped | tee third.log
grep -q "6 image(s) already done, 0 to compute" third.log || fail "third run recomputed images"
echo "resume at np $NP: ok"
