# Preemption: SIGUSR1 (what Slurm sends before a time limit or preemption, forwarded by
# mpiexec to every rank) stops `generate` at a step boundary: finished images are kept, the
# image in progress is abandoned without a trace, the status is 7, and a rerun finishes the
# batch with every image bit-identical to an uninterrupted run.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
make_tiny_fixtures 4
# Long enough (about a second an image) that the signal lands in the middle of the batch.
ARGS=(--weights weights.h5 --prompts prompts.h5 --steps 3000)
run_np "$NP" generate "${ARGS[@]}" --out full >/dev/null

"$MPIEXEC" -n "$NP" --oversubscribe "$FRESCO" generate "${ARGS[@]}" --out run >run.log 2>&1 &
job=$!
for _ in $(seq 600); do ls run/img_*.h5 >/dev/null 2>&1 && break; sleep 0.05; done
# The signal goes to every rank (as Slurm signals every task of a step); mpiexec's own
# forwarding of USR1 differs between OpenMPI builds.
kill -USR1 "$job" $(pgrep -P "$job" -x fresco)
rc=0
wait "$job" || rc=$?
cat run.log | grep "^fresco" || true
[ "$rc" -eq 7 ] || fail "a stopped batch ended with status $rc, expected 7"
grep -q "stopped by a signal (SIGUSR1): [0-9]* image(s) not done" run.log || fail "no summary of the stop"
kept=$(ls run/img_*.h5 | wc -l)
[ "$kept" -ge 1 ] && [ "$kept" -lt 4 ] || fail "expected some but not all images kept, got $kept"
[ -z "$(ls run | grep -v '^img_[0-9]*\.h5$')" ] || { ls run; fail "the abandoned image left a file"; }
for f in run/img_*.h5; do "$H5_TOOL" compare "$f" "full/$(basename "$f")" /latent 0 >/dev/null; done

run_np "$NP" generate "${ARGS[@]}" --out run | tee rerun.log
grep -q "$kept image(s) already done, $((4 - kept)) to compute" rerun.log || fail "the rerun did not resume"
for i in 0 1 2 3; do "$H5_TOOL" compare "run/img_$i.h5" "full/img_$i.h5" /latent 0; done
echo "preemption at np $NP: $kept image(s) kept, status 7, rerun bit-identical"
