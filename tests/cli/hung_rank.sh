# A hung rank ends the job: one rank of a sequence-parallel group is stopped (SIGSTOP) in the
# middle of a batch; its peer waits past --comm-timeout, reports the hung peer once, and the
# job ends with status 6 within seconds.
source "$(dirname "$0")/common.sh"
NP=${1:-2}  # ranks, all in one Ulysses group
"$FRESCO" init-weights --model flux-small --seed 3 weights.h5 >/dev/null
# Long enough (minutes) that the stop lands in the denoising steps on any machine.
"$FRESCO" make-prompts --model flux-small --count 4 --txt-len 8 --width 256 --height 256 \
  --steps 400 prompts.h5 >/dev/null

"$MPIEXEC" -n "$NP" --oversubscribe "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 \
  --out out --ulysses "$NP" --comm-timeout 2 >out.log 2>err.log &
job=$!
# Wait until the ranks compute, then stop one of them. The ranks are mpiexec's children named
# fresco (mpiexec's own command line also holds the fresco command, so it is not matched by it).
for _ in $(seq 100); do
  [ "$(pgrep -P "$job" -x fresco | wc -l)" -ge "$NP" ] && grep -q "effective configuration" out.log && break
  sleep 0.2
done
sleep 2
victim=$(pgrep -P "$job" -x fresco | tail -1)
[ -n "$victim" ] || fail "no rank to stop"
kill -STOP "$victim"
stopped_at=$(date +%s)
rc=0
# The job must end by itself; 60 s is the test's own limit, far above the expected ~3 s.
for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$job" 2>/dev/null; then
  kill -CONT "$victim" 2>/dev/null; kill "$job" 2>/dev/null
  cat out.log err.log; fail "the job still runs 60 s after one rank was stopped"
fi
wait "$job" || rc=$?
elapsed=$(( $(date +%s) - stopped_at ))
kill -CONT "$victim" 2>/dev/null || true
cat err.log
[ "$rc" -ne 0 ] || fail "the job ended with status 0 after a rank hung"
grep -q "hung or dead" err.log || fail "no message names a hung or dead peer"
[ "$elapsed" -le 30 ] || fail "the job took ${elapsed} s to end after the stop (timeout 2 s)"
echo "ok: np $NP: the job ended ${elapsed} s after the stop, status $rc"
