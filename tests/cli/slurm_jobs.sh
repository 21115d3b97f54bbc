# The jobs/ scripts under the real Slurm (label slurm; skipped with exit 77 where none runs).
#   slurm_jobs.sh generate NP  jobs/generate.sbatch on NP tasks: every image, same as one rank
#   slurm_jobs.sh array        jobs/night-batch.sbatch as a 3-task array: every image once; the
#                              scripts' GPU request reaches Slurm (this node has no GPU: refused
#                              without the override, accepted with it)
#   slurm_jobs.sh requeue      `scontrol requeue` of a running array task: the rerun finishes
#                              its slice without redoing finished images
#   slurm_jobs.sh signal       USR1 to the batch script mid-image (what --signal=B:USR1@T
#                              sends) of the 3-task array's task that holds the array's own job
#                              id (usually the last to start): fresco stops, the task requeues
#                              itself and finishes; its siblings are neither stopped nor requeued
#   slurm_jobs.sh signal_nohandler   the same with a fresco that dies on USR1 (a build without
#                              signal handling): nothing finished is lost, the task requeues
#   slurm_jobs.sh sweep        jobs/sweep.sbatch: `fresco sweep` with srun job steps
# Results are compared bit for bit with an uninterrupted run on one rank (one thread per rank).
source "$(dirname "$0")/slurm_common.sh"
MODE=${1:?mode}
require_slurm

export FRESCO WEIGHTS=$PWD/weights.h5 PROMPTS=$PWD/prompts.h5 OUT=$PWD/out
export OMP_NUM_THREADS=1
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
# Images long enough (about 0.5-1 s each on the CI machine) for a signal to land mid-batch.
N=6
STEPS=${SLURM_TEST_STEPS:-300}
"$FRESCO" make-prompts --model flux-tiny --count $N --txt-len 5 --width 128 --height 128 \
  --steps "$STEPS" prompts.h5 >/dev/null
reference() {  # the uninterrupted run
  "$MPIEXEC" -n 1 "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out ref --threads 1 "$@" > ref.log ||
    { cat ref.log; fail "reference run failed"; }
}
# --time well above the script's --signal=B:USR1@600, which would otherwise fire at once.
# --gpus-per-node=0, one node, one CPU per rank: the documented override that runs the GPU job
# scripts on this GPU-less node (docs/cluster.md, "Without GPUs"); each mode gives
# --ntasks-per-node (the scripts' 8 ranks of 8 cores do not fit its 4 CPUs).
SB=(--gpus-per-node=0 --nodes=1 --cpus-per-task=1 --time=60 --chdir="$PWD")

case "$MODE" in
generate)
  NP=${2:?ranks}
  N=$((NP + 1))  # more images than ranks: data parallel, one group per rank
  "$FRESCO" make-prompts --model flux-tiny --count $N --txt-len 5 --width 64 --height 48 --steps 3 prompts.h5 >/dev/null
  reference
  submit --ntasks-per-node="$NP" "${SB[@]}" -o "$PWD/gen-%j.out" "$JOBS_DIR/generate.sbatch"
  wait_job "$JOB" 120
  expect_completed "$JOB"
  grep -q "generate on $NP rank(s)" gen-*.out || { cat gen-*.out; fail "the job did not run on $NP ranks"; }
  expect_each_image_once $N gen-*.out
  expect_identical_to ref $N
  # Resubmitted: nothing left to do.
  submit --ntasks-per-node="$NP" "${SB[@]}" -o "$PWD/gen2-%j.out" "$JOBS_DIR/generate.sbatch"
  wait_job "$JOB" 120
  expect_completed "$JOB"
  grep -q "$N image(s) already done, 0 to compute" gen2-*.out || { cat gen2-*.out; fail "a resubmitted job recomputed images"; }
  # Split each image over the ranks (PARALLEL knob): same images within rounding.
  PARALLEL="--ulysses $NP" OUT=$PWD/out_sp submit --ntasks-per-node="$NP" "${SB[@]}" \
    -o "$PWD/sp-%j.out" "$JOBS_DIR/generate.sbatch"
  wait_job "$JOB" 120
  expect_completed "$JOB"
  grep -q "of $NP rank(s): Ulysses $NP x Ring 1" sp-*.out || { cat sp-*.out; fail "PARALLEL was not applied"; }
  for i in $(seq 0 $((N - 1))); do
    "$H5_TOOL" compare "out_sp/img_$i.h5" "ref/img_$i.h5" /latent 1e-5 >/dev/null || fail "image $i differs (Ulysses $NP)"
  done
  echo "slurm generate.sbatch on $NP tasks: ok"
  ;;
array)
  expect_error "option --slice must be K/N with 0 <= K < N (got '3/3')" -- \
    "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out bad --slice 3/3
  reference --steps 3
  submit --array=0-2 --ntasks=1 --ntasks-per-node=1 "${SB[@]}" -o "$PWD/night-%A_%a.out" "$JOBS_DIR/night-batch.sbatch" --steps 3
  wait_job "$JOB" 120
  expect_completed "$JOB"
  grep -q "slice 2/3" night-*_2.out || fail "array task 2 did not get slice 2/3"
  expect_each_image_once $N night-*.out
  [ "$(ls out/img_*.h5 | wc -l)" -eq $N ] || fail "unexpected result files: $(ls out)"
  expect_identical_to ref $N
  echo "slurm night-batch array: every image exactly once: ok"
  # Every script asks for GPUs in a way Slurm reads: refused here (no GPU), accepted with the
  # override. (--test-only: nothing runs.)
  for s in generate night-batch sweep; do
    if sbatch --test-only -N 1 --ntasks-per-node=2 --cpus-per-task=1 --chdir="$PWD" "$JOBS_DIR/$s.sbatch" > t.log 2>&1; then
      cat t.log; fail "$s.sbatch was accepted on a node without GPUs: it requests none"
    fi
    grep -qi "gres" t.log || { cat t.log; fail "$s.sbatch was refused, but not for its GPU request"; }
    sbatch --test-only "${SB[@]}" --ntasks-per-node=2 "$JOBS_DIR/$s.sbatch" > t.log 2>&1 ||
      { cat t.log; fail "$s.sbatch with the override (--gpus-per-node=0 -N 1 --ntasks-per-node=2 --cpus-per-task=1) was refused"; }
  done
  echo "slurm: the job scripts request GPUs; --gpus-per-node=0 runs them here: ok"
  ;;
requeue|signal|signal_nohandler)
  # requeue, signal_nohandler: 2 slices of 3 images, task 0 is interrupted after its first image.
  # signal: 3 slices of 3 images; the task interrupted is the one whose job id is the array's own
  # id (a bare `scancel`/`scontrol requeue` of that id reaches every task of the array).
  TASKS=2
  if [ "$MODE" = signal ]; then
    TASKS=3 N=9
    "$FRESCO" make-prompts --model flux-tiny --count $N --txt-len 5 --width 128 --height 128 \
      --steps "$STEPS" prompts.h5 >/dev/null
  fi
  reference &
  ref_pid=$!
  if [ "$MODE" = signal_nohandler ]; then
    cat > dies_on_usr1.sh <<SH
#!/bin/bash
# fresco as a build without signal handling behaves: USR1 ends it at once
"$FRESCO" "\$@" & child=\$!
trap 'kill -KILL \$child; exit 138' USR1
wait \$child
SH
    chmod +x dies_on_usr1.sh
    FRESCO=$PWD/dies_on_usr1.sh
  fi
  submit --array=0-$((TASKS - 1)) --ntasks=1 --ntasks-per-node=1 "${SB[@]}" -o "$PWD/night-%A_%a.out" "$JOBS_DIR/night-batch.sbatch"
  ARRAY=$JOB
  K=0
  if [ "$MODE" = signal ]; then
    # The task that took the array's own JobId, once it runs (scontrol -o: one line per task).
    K=
    for _ in $(seq 600); do
      K=$(scontrol -o show job "$ARRAY" 2>/dev/null | grep -P "^JobId=$ARRAY .*JobState=RUNNING" |
          grep -oP ' ArrayTaskId=\K[0-9]+(?= )' || true)
      [ -n "$K" ] && break
      sleep 0.1
    done
    [ -n "$K" ] || { scontrol show job "$ARRAY" >&2; fail "no running task of array $ARRAY holds JobId $ARRAY"; }
    echo "array $ARRAY: task $K holds JobId $ARRAY"
  fi
  logk=night-${ARRAY}_$K.out
  first=$(( K * N / TASKS ))  # the first image of slice K
  wait_for_line "$logk" "done (img_$first," 90
  siblings=()
  for t in $(seq 0 $((TASKS - 1))); do [ "$t" -ne "$K" ] && siblings+=("$t"); done
  running=0
  for t in "${siblings[@]}"; do
    scontrol -o show job "${ARRAY}_$t" | grep -q "JobState=RUNNING" && running=$((running + 1))
  done
  if [ "$MODE" = requeue ]; then
    scontrol requeue "${ARRAY}_$K" || fail "scontrol requeue ${ARRAY}_$K failed"
  else
    scancel --signal=USR1 --batch "${ARRAY}_$K" || fail "scancel --signal=USR1 --batch failed"
    # (scancel --signal=USR1 --full would also signal the step directly)
  fi
  wait_job "$ARRAY" 180
  expect_completed "$ARRAY"
  wait "$ref_pid" || fail "reference run failed"
  log0=$logk
  grep -q "attempt 1" "$log0" || { cat "$log0"; fail "task $K was not rerun"; }
  scontrol show job "${ARRAY}_$K" | grep -q "Restarts=1" || fail "task $K was not requeued exactly once"
  # The other tasks were neither stopped nor requeued: one attempt each, complete.
  for t in "${siblings[@]}"; do
    logt=night-${ARRAY}_$t.out
    scontrol show job "${ARRAY}_$t" | grep -q "Restarts=0" ||
      fail "task $t was requeued by the interruption of task $K ($(scontrol show job "${ARRAY}_$t" | grep -oP 'Restarts=\S+'))"
    ! grep -q "attempt [1-9]\|USR1\|stopped by a signal\|status 7" "$logt" ||
      { cat "$logt"; fail "task $t was stopped by the interruption of task $K"; }
    [ "$(grep -c "slice complete" "$logt")" -eq 1 ] || { cat "$logt"; fail "task $t did not complete its slice exactly once"; }
  done
  [ "${#siblings[@]}" -eq 0 ] || echo "tasks ${siblings[*]}: untouched ($running of them were running when task $K was interrupted)"
  grep -q "job ${ARRAY}_$K, attempt 0" "$log0" || { cat "$log0"; fail "the log does not name the task as ${ARRAY}_$K"; }
  if [ "$MODE" != requeue ]; then
    grep -q "USR1 (time limit near)" "$log0" || { cat "$log0"; fail "the batch script did not see USR1"; }
    grep -q "requeueing this task" "$log0" || { cat "$log0"; fail "the task did not requeue itself"; }
    # With signal handling in fresco (status 7) the step ends cleanly at a step boundary.
    grep -q "stopped by a signal" "$log0" && echo "fresco stopped at a safe point (status 7)"
  fi
  grep -q "image(s) already done" "$log0" || { cat "$log0"; fail "the rerun did not resume"; }
  expect_each_image_once $N night-*.out
  ls out | grep -q '\.tmp' && echo "note: leftover temporary file(s): $(ls out | grep '\.tmp')"
  expect_identical_to ref $N
  echo "slurm night-batch $MODE mid-batch: resumed, every image once, bit-identical: ok"
  ;;
sweep)
  # jobs/sweep.sbatch in a 2-task allocation: runs become `srun -n K --exclusive` job steps.
  command -v gnuplot >/dev/null || { echo "SKIP: gnuplot not installed (scripts/install-deps.sh)"; exit 77; }
  OUT=$PWD/study METHODS=ulysses,patch RANKS=1,2 RESOLUTIONS=64x48 STEPS=2 EXTRA="--txt-len 5" \
    submit --ntasks-per-node=2 "${SB[@]}" -o "$PWD/sweep-%j.out" "$JOBS_DIR/sweep.sbatch"
  wait_job "$JOB" 180
  expect_completed "$JOB"
  [ "$(grep -c '"status":"ok"' study/sweep.jsonl)" -eq 3 ] || fail "expected 3 successful records"
  [ "$(grep -c '"launcher":"srun"' study/sweep.jsonl)" -eq 3 ] || fail "the runs were not srun job steps"
  grep -q "\"slurm_job\":\"$JOB\"" study/sweep.jsonl || fail "the records do not name the job"
  for p in time speedup efficiency comm_share model; do
    [ "$(head -c 4 "study/$p.png" | od -An -tx1 | tr -d ' \n')" = 89504e47 ] || fail "$p.png is not a PNG"
  done
  echo "slurm sweep.sbatch: records and plots from job steps: ok"
  ;;
*) fail "unknown mode $MODE" ;;
esac
