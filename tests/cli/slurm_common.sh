# Helpers of the slurm-labelled tests: they submit the real jobs/ scripts to a real Slurm
# (scripts/slurm.sh start, done by `make test`). Where no Slurm answers, the test skips with
# exit 77 and the reason.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

JOBS_DIR=${JOBS_DIR:?the jobs/ directory}
SLURM_STATE=${FRESCO_SLURM_STATE:-/run/fresco-slurm}
SUBMITTED=()
# On failure: the jobs' logs and states too.
fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.out; do [ -e "$f" ] && { echo "---- $f" >&2; grep -v '^  [a-z-]* = ' "$f" >&2; }; done
  for j in "${SUBMITTED[@]}"; do scontrol show job "$j" 2>/dev/null | grep -E 'JobId|JobState|Restarts' >&2; done
  exit 1
}
# Jobs of a failed test must not outlive it (nor its work directory).
trap '[ ${#SUBMITTED[@]} -gt 0 ] && scancel "${SUBMITTED[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT

# sbatch --parsable ARGS...; sets JOB to the job id and remembers it for the clean-up.
# With --wait its status is the job's.
submit() {
  local rc=0
  JOB=$(sbatch --parsable "$@") || rc=$?
  JOB=${JOB%%;*}
  [ -n "$JOB" ] || fail "sbatch $* was refused"
  SUBMITTED+=("$JOB")
  return $rc
}

require_slurm() {
  local why=""
  if ! command -v sbatch >/dev/null 2>&1; then
    why="sbatch not found (Slurm not installed)"
  elif ! scontrol ping 2>/dev/null | grep -q UP; then
    why="slurmctld does not answer"
  else
    local state
    state=$(sinfo -h -o %T 2>/dev/null | head -1)
    # idle, mixed, allocated, completing (jobs of other tests) are fine; '*' = not responding
    case "$state" in ""|*'*'*|*down*|*drain*|*fail*|*unk*|*inval*) why="the node is not usable (state '${state:-none}')" ;; esac
  fi
  if [ -n "$why" ]; then
    [ -s "$SLURM_STATE/unavailable" ] && why="$why; scripts/slurm.sh start said: $(cat "$SLURM_STATE/unavailable")"
    echo "SKIP: no usable Slurm: $why (start one with scripts/slurm.sh start, as root; make test does)"
    exit 77
  fi
}

# The states of a job's tasks (one line per array task), e.g. "COMPLETED".
job_states() { scontrol show job "$1" 2>/dev/null | grep -oP 'JobState=\K\S+'; }

# Waits until every task of job $1 has ended (at most $2 seconds); fails on a timeout.
wait_job() {
  local job=$1 limit=${2:-240} states
  for _ in $(seq $((limit * 4))); do
    states=$(job_states "$job")
    if [ -n "$states" ] && ! grep -qvE '^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|DEADLINE|PREEMPTED)$' <<<"$states"; then
      return 0
    fi
    sleep 0.25
  done
  scontrol show job "$job" >&2
  fail "job $job did not end within $limit s (states: $(echo $states))"
}

# Waits until file $1 matches pattern $2 (at most $3 seconds).
wait_for_line() {
  for _ in $(seq $(($3 * 10))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$1" >&2 2>/dev/null
  fail "'$2' did not appear in $1 within $3 s"
}

# Every task of job $1 COMPLETED.
expect_completed() {
  local states
  states=$(job_states "$1")
  if grep -qv '^COMPLETED$' <<<"$states"; then
    scontrol show job "$1" >&2
    cat ./*.out >&2 2>/dev/null
    fail "job $1 did not complete: $(echo $states)"
  fi
}

# Image i was finished exactly once over all the logs given, for i in 0..N-1.
expect_each_image_once() {
  local n=$1; shift
  for i in $(seq 0 $((n - 1))); do
    local c
    c=$(cat "$@" | grep -c "done (img_$i," || true)
    [ "$c" -eq 1 ] || { cat "$@" >&2; fail "image $i was computed $c time(s), expected exactly once"; }
    [ -s "out/img_$i.h5" ] || fail "out/img_$i.h5 is missing"
  done
}

# Every result equals the uninterrupted reference run bit for bit.
expect_identical_to() {
  local ref=$1 n=$2
  for i in $(seq 0 $((n - 1))); do
    "$H5_TOOL" compare "out/img_$i.h5" "$ref/img_$i.h5" /latent 0 >/dev/null ||
      fail "image $i differs from the uninterrupted run"
  done
}
