# A lost rank does not hold a data-parallel batch (issue 25, defect 5). Images are handed out one
# at a time, so when one of three ranks (one image each) is stopped with SIGSTOP after the first
# image, the other two take the rest; the job ends a few seconds past --comm-timeout with every
# image but the one the stopped rank held published, that image named in the error, the waiting
# ranks sleeping (not spinning), and a rerun finishes the batch bit-identical to a clean run.
source "$(dirname "$0")/common.sh"
NP=${1:-3}
make_tiny_fixtures 6
# Steps enough for about a second an image (CPU, flux-tiny), so the stop lands mid-image.
ARGS=(--weights weights.h5 --prompts prompts.h5 --steps 1500 --ulysses 1 --ring 1)
run_np 2 generate "${ARGS[@]}" --out clean >/dev/null

"$MPIEXEC" -n "$NP" --oversubscribe "$FRESCO" generate "${ARGS[@]}" --out run --comm-timeout 5 \
  >out.log 2>err.log &
job=$!
for _ in $(seq 300); do grep -q "image 1/6 done" out.log && break; sleep 0.05; done
grep -q "image 1/6 done" out.log || { cat out.log err.log; fail "no image was done within 15 s"; }
# The ranks are mpiexec's children named fresco; OpenMPI gives each its rank in the environment.
rank_of() { tr '\0' '\n' </proc/"$1"/environ | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'; }
victim="" victim_rank="" others=()
for pid in $(pgrep -P "$job" -x fresco); do
  r=$(rank_of "$pid")
  if [ -z "$victim" ] && [ "$r" != 0 ]; then victim=$pid victim_rank=$r; else others+=("$pid"); fi
done
[ -n "$victim" ] && [ "${#others[@]}" -eq $((NP - 1)) ] || fail "could not find the $NP ranks of the job"
kill -STOP "$victim"
stopped_at=$(date +%s)

# Once the others have published what they can (5 images), they wait for the stopped rank:
# their CPU time over 2 s of that wait (utime + stime, in clock ticks) shows whether they spin.
for _ in $(seq 200); do
  [ "$(ls run/img_*.h5 2>/dev/null | wc -l)" -ge 5 ] && break
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
cpu_ticks() { local t=0; for p in "${others[@]}"; do t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0))); done; echo $t; }
sleep 0.5
t0=$(cpu_ticks); sleep 2; t1=$(cpu_ticks)
busy=$(( (t1 - t0) * 100 / ($(getconf CLK_TCK) * 2 * (NP - 1)) ))   # percent of a core, per rank

rc=0
for _ in $(seq 200); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then
  kill -KILL "$victim" 2>/dev/null; kill "$job" 2>/dev/null; wait "$job" || true
  cat out.log err.log; fail "the job still runs 20 s after one rank was stopped"
fi
wait "$job" || rc=$?
elapsed=$(( $(date +%s) - stopped_at ))
kill -KILL "$victim" 2>/dev/null || true   # the stopped rank's job is over: kill what is left of it
cat err.log
[ "$rc" -ne 0 ] || fail "the job ended with status 0 although a rank was lost"
[ "$busy" -lt 30 ] || fail "the waiting ranks used ${busy}% of a core each: they spin"
lost=$(grep -o "image [0-9]* (held by group [0-9]*, rank(s) $victim_rank)" err.log | awk '{print $2}')
[ "$(echo "$lost" | grep -c .)" -eq 1 ] || fail "the error does not name one image held by rank $victim_rank"
# The stop may land after the stopped rank published its image but before it told rank 0 (a
# window of a few milliseconds, seen on a loaded CI machine): that image is then complete (results
# are published atomically) and the rerun finds all six done. Either way the rerun is checked
# bit for bit against the clean run below.
lost_published=0
for i in 0 1 2 3 4 5; do
  if [ "$i" = "$lost" ]; then
    [ ! -e "run/img_$i.h5" ] || lost_published=1
  else
    [ -e "run/img_$i.h5" ] || fail "image $i is not published although the stopped rank did not hold it"
  fi
done

run_np "$NP" generate "${ARGS[@]}" --out run | tee rerun.log
if [ "$lost_published" = 1 ]; then
  grep -q "6 image(s) already done, 0 to compute" rerun.log || fail "the rerun did not find the published image $lost done"
else
  grep -q "5 image(s) already done, 1 to compute" rerun.log || fail "the rerun did not resume the batch"
fi
for i in 0 1 2 3 4 5; do "$H5_TOOL" compare "run/img_$i.h5" "clean/img_$i.h5" /latent 0; done
echo "ok: np $NP: rank $victim_rank stopped, image $lost named (published before the stop: $lost_published)," \
  "the job ended ${elapsed} s later" \
  "(status $rc), waiting ranks at ${busy}% CPU, rerun bit-identical"
