#!/usr/bin/env bash
# The 4- and 8-GPU scaling run (issue 19) on a GPU host with GPUS GPUs (default: all visible),
# in phases so that it fits calls of 10 minutes on one warm machine (PHASES, in order):
#   build     configure and build for Hopper (build-gpu)
#   tests     the transports' test at np GPUS (256 MiB) and the gpu-labelled GPU-rank tests
#   bench     `fresco bench` (FLUX.1-dev shape, random bf16 weights, 512 text tokens) at SIZES on
#             1, 2, 4 (and 8) GPUs: Ulysses-P, Ring-P, USP, Torus over emulated nodes,
#             DistriFusion (W=1), with and without FP8 communication
#   decode    `fresco bench-decode` at DECODE_SIZES on 1, 2, 4 (and 8) GPUs (one image per group)
#   sweep     `fresco sweep` over the same GPUs (JSON records; plots drawn later with --plot-only)
# Records accumulate in STATE (default /tmp/fresco-scaling, kept while the machine is warm):
# bench.jsonl, decode.jsonl, sweep/sweep.jsonl and the logs; each call packs them into
# $OUT/scaling.tgz and prints the tables last. A run past BUDGET_S seconds skips what is left
# and says so. COUNTS ("1 2 4") and ONLY (a regex over "np N ARGS") select bench runs; CONFIGS
# (lines of "NP ARGS...") replaces the matrix; TEST_NPS ("2 4 8") selects the GPU-rank tests. Usage: PHASES="build tests" GPUS=4 bash scripts/gpu-scaling-run.sh
set -uo pipefail
phases=" ${PHASES:-build tests bench decode sweep} "
state=${STATE:-/tmp/fresco-scaling}
mkdir -p "$state"; state=$(cd "$state" && pwd)
out=${OUT:-$state}
mkdir -p "$out"
deadline=$((SECONDS + ${BUDGET_S:-100000}))
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
gpus=${GPUS:-$(nvidia-smi -L | wc -l)}
sizes=${SIZES:-1024 2048 4096}
counts=(1); for p in 2 4 8; do [ "$p" -le "$gpus" ] && counts+=("$p"); done
[ -n "${COUNTS:-}" ] && read -ra counts <<< "$COUNTS"  # rank counts of the bench and decode phases
has() { [[ $phases == *" $1 "* ]]; }
in_time() { [ "$SECONDS" -lt "$deadline" ] || { echo "skipped (past BUDGET_S): $*"; return 1; }; }
nvidia-smi -L > "$state/gpu.txt"
if has build; then
  # shellcheck disable=SC2086
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$state/build.log" 2>&1 \
    || { tail -30 "$state/build.log"; exit 1; }
  cmake --build build-gpu -j "$(nproc)" --target fresco test_device_communicator h5_tool test_backend_ops \
    >> "$state/build.log" 2>&1 || { grep -m20 -A5 error "$state/build.log"; exit 1; }
  echo "build: ${SECONDS} s"
fi
cd build-gpu || exit 1
if has tests; then
  timeout 300 mpiexec -n "$gpus" tests/test_device_communicator 256 > "$state/devcomm.log" 2>&1
  echo "test_device_communicator np $gpus: rc $?"; grep -v "^--" "$state/devcomm.log" | tail -4
  # The CTest registrations of the GPU-rank tests: np 2, 4 and 8 (8 needs eight GPUs).
  for np in ${TEST_NPS:-2 4 8}; do
    [ "$np" -le "$gpus" ] && in_time "cli_gpu_ranks_np$np" || continue
    timeout 420 ctest -R "^cli_gpu_ranks_np$np\$" -V > "$state/ranks_np$np.log" 2>&1
    echo "cli_gpu_ranks_np$np: rc $? (${SECONDS} s)"; grep -E "ok:|FAIL|SKIP" "$state/ranks_np$np.log" | sed 's/^[0-9]*: //'
  done
fi
bench() {  # bench NP ARGS...
  local np=$1; shift
  [[ -z ${ONLY:-} || "np $np $*" =~ $ONLY ]] || return 0  # ONLY: a regex over "np N ARGS"
  in_time "bench np $np $*" || return 0
  local steps=(--steps 6 --warmup 2)
  [[ " $* " == *" 4096 "* ]] && steps=(--steps 5 --warmup 1)
  timeout 300 mpiexec -n "$np" ./fresco bench --json "${steps[@]}" "$@" 2>> "$state/bench_err.log" < /dev/null |
    sed -n '/^{/,$p' | python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())))' \
    >> "$state/bench.jsonl" || echo "bench failed: np $np $*"
}
if has bench && [ -n "${CONFIGS:-}" ]; then
  # Given runs instead of the matrix: one "NP ARGS..." per line (an A/B of options, say).
  while read -r np args; do
    # shellcheck disable=SC2086
    [ -n "$np" ] && bench "$np" $args
  done <<< "$CONFIGS"
elif has bench; then
  for size in $sizes; do
    s=(--width "$size" --height "$size")
    for p in "${counts[@]}"; do
      if [ "$p" = 1 ]; then bench 1 "${s[@]}"; continue; fi
      bench "$p" "${s[@]}" --ulysses "$p" --ring 1
      bench "$p" "${s[@]}" --ulysses 1 --ring "$p"
      bench "$p" "${s[@]}" --ulysses "$p" --ring 1 --comm-dtype e4m3
      [ "$p" -ge 4 ] && bench "$p" "${s[@]}" --ulysses $((p / 2)) --ring 2
      [ "$p" -ge 4 ] && bench "$p" "${s[@]}" --ulysses $((p / 2)) --ring 2 --ranks-per-node $((p / 2)) --inter-node torus
      bench "$p" "${s[@]}" --parallel patch --patches "$p" --warmup-steps 1
      bench "$p" "${s[@]}" --parallel patch --patches "$p" --warmup-steps 1 --comm-dtype e4m3
    done
    echo "bench ${size}: done (${SECONDS} s)"
  done
fi
if has decode; then
  # One image per group: the ranks decode bands of its rows (halos, GroupNorm sums and the
  # mid-block attention over IPC).
  for size in ${DECODE_SIZES:-2048 4096}; do
    for p in "${counts[@]}"; do
      in_time "bench-decode np $p $size" || continue
      timeout 300 mpiexec -n "$p" ./fresco bench-decode --width "$size" --height "$size" --repeat 3 --json \
        2>> "$state/decode_err.log" | grep '^{' >> "$state/decode.jsonl" || echo "bench-decode failed: np $p $size"
    done
  done
fi
if has sweep && in_time "sweep"; then
  ranks=$(IFS=,; echo "${counts[*]}")
  timeout 560 ./fresco sweep --weights random:0 --model flux-dev --backend cuda --dtype bf16 --out "$state/sweep" \
    --ranks "$ranks" --methods ulysses,ring,patch --resolutions ${SWEEP_RESOLUTIONS:-1024x1024,2048x2048} --steps 4 \
    --txt-len 512 --ranks-per-node "$gpus" --predict-ranks 16,32,64 --no-plots > "$state/sweep.log" 2>&1 || echo "sweep failed (see sweep.log)"
  grep -c . "$state/sweep/sweep.jsonl" 2>/dev/null | sed 's/^/sweep records: /'
fi
tar czf "$out/scaling.tgz" -C "$state" --exclude='sweep/runs' . 2>/dev/null
[ -s "$state/bench.jsonl" ] && python3 - "$state/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
one = {r["width"]: r["ms_per_step"] for r in rows if r.get("ranks", 1) == 1}
print(f"{'size':>5} {'GPUs':>4} {'method':<22} {'ms/step':>8} {'speed-up':>8} {'exposed':>8} {'GiB':>6}")
for r in rows:
    n = r.get("ranks", 1)
    if n == 1: m = "one GPU"
    elif r["method"] == "patch": m = f"patch {n}"
    else: m = f"U{r['ulysses']}xR{r['ring']}"
    if r.get("comm_dtype") == "e4m3": m += " fp8"
    if r.get("inter_node") == "torus": m += " torus"
    if r.get("head_groups", 1) > 1: m += f" G{r['head_groups']}"
    worst = max(r.get("per_rank", [{"exposed_comm_ms": 0, "ms_per_step": 0}]), key=lambda p: p["ms_per_step"])
    gib = max((p.get("memory_gib", 0) for p in r.get("per_rank", [])), default=0)
    print(f"{r['width']:>5} {n:>4} {m:<22} {r['ms_per_step']:8.2f} {one.get(r['width'], 0) / r['ms_per_step']:8.2f} "
          f"{worst.get('exposed_comm_ms', 0):8.2f} {gib:6.1f}")
PY
[ -s "$state/decode.jsonl" ] && python3 - "$state/decode.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"decode {'size':>5} {'GPUs':>4} {'ms':>8} {'peak GiB':>9} {'conv ceiling':>12}")
for r in rows:
    print(f"decode {r['width']:>5} {r['ranks']:>4} {r['ms']:8.1f} {r['peak_gib']:9.2f} {r['fraction_of_conv_ceiling']:12.2f}")
PY
exit 0
