# `fresco compare` as a gate: --max-rel-l2 and --min-psnr end with status 1 and one line that
# names the limit when the test file is further from the reference; status 0 within them.
source "$(dirname "$0")/common.sh"
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 4 --seed 1 a.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 4 --seed 2 b.h5 >/dev/null
D=/prompts/0/txt
cmp_ab() { "$FRESCO" compare --dataset $D "$@"; }

# Identical files pass the strictest limits.
cmp_ab a.h5 a.h5 --max-rel-l2 0 --min-psnr 100 > same.log || fail "identical files failed a limit"
grep -q "relative L2 0.0000e+00" same.log || fail "identical files: $(cat same.log)"
# Different files (independent normals: relative L2 about 1.4): within a loose limit, not a tight one.
cmp_ab a.h5 b.h5 --max-rel-l2 2 > loose.log || fail "relative L2 within 2 failed"
rc=0; cmp_ab a.h5 b.h5 --max-rel-l2 0.5 > tight.log 2> tight.err || rc=$?
[ "$rc" -eq 1 ] || fail "--max-rel-l2 exceeded: expected status 1, got $rc"
grep -q "relative L2" tight.log || fail "the measurements are not printed when a limit fails"
[ "$(wc -l < tight.err)" -eq 1 ] || { cat tight.err; fail "expected one line of reason"; }
grep -q "fresco compare: $D relative L2 1\.[0-9e+.-]* exceeds --max-rel-l2 0.5" tight.err \
  || { cat tight.err; fail "the reason does not name the limit"; }
rc=0; cmp_ab a.h5 b.h5 --min-psnr 40 > psnr.log 2> psnr.err || rc=$?
[ "$rc" -eq 1 ] || fail "--min-psnr not reached: expected status 1, got $rc"
grep -q "PSNR [0-9.]* dB is below --min-psnr 40" psnr.err || { cat psnr.err; fail "no PSNR reason"; }
cmp_ab a.h5 b.h5 --min-psnr 1 > /dev/null || fail "PSNR above 1 dB failed"
# Nonsense limits are input errors.
expect_error "option --max-rel-l2 must be a non-negative number" -- cmp_ab a.h5 b.h5 --max-rel-l2 -1
[ "$LAST_RC" -eq 2 ] || fail "a negative limit is an input error, got $LAST_RC"
expect_error "option --min-psnr must be a finite number" -- cmp_ab a.h5 b.h5 --min-psnr nan
echo "compare: ok"
