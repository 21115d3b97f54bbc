#!/usr/bin/env bash
# The two-GPU measuring run (issue 14) on a GPU host with two or more GPUs: build for Hopper,
# the device-transport test program and the GPU-ranks test at np 2 (NCCL included), then
# `fresco bench` (FLUX.1-dev shape, random bf16 weights, 512 text tokens) on one GPU and on two
# GPUs per method (Ulysses-2, Ring-2, DistriFusion patches) and transport (nccl, ipc), at
# SIZES (default "1024 2048"). Every bench record goes to $OUT/bench.jsonl; a table is printed
# last: ms per step, speed-up over one GPU, and the exposed communication per rank.
# Usage: bash scripts/gpu-bench-ranks.sh   (carry .gpu-host; see the BRIEF)
set -uo pipefail
out=${OUT:-gpu-bench-logs}
mkdir -p "$out"; out=$(cd "$out" && pwd)
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
nvidia-smi -L | tee "$out/gpu.txt"
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target fresco test_device_communicator h5_tool test_backend_ops \
  >> "$out/build.log" 2>&1 || { grep -m20 -A5 error "$out/build.log"; exit 1; }
cd build-gpu || exit 1
timeout 120 mpiexec -n 2 tests/test_device_communicator 256 2>&1 | tee "$out/devcomm.log" | grep -v "^--" | tail -5
tests/test_backend_ops --op quantize_rows,dequantize_rows --backend cuda | tail -2
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  ctest -R "cli_gpu_ranks_np2" -V > "$out/ranks.log" 2>&1; echo "cli_gpu_ranks_np2: rc $?"
  grep -E "ok:|FAIL" "$out/ranks.log" | sed 's/^[0-9]*: //' | tail -20
fi
: > "$out/bench.jsonl"
bench() {  # bench NP ARGS...
  local np=$1; shift
  timeout 300 mpiexec -n "$np" ./fresco bench --json --steps 6 --warmup 2 "$@" 2> "$out/bench_err.log" |
    sed -n '/^{/,$p' | python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())))' >> "$out/bench.jsonl" ||
    { echo "bench failed: np $np $*"; tail -5 "$out/bench_err.log"; }
}
for size in ${SIZES:-1024 2048}; do
  bench 1 --width "$size" --height "$size"
  for t in ${TRANSPORTS:-nccl ipc}; do
    bench 2 --width "$size" --height "$size" --transport $t --ulysses 2 --ring 1
    bench 2 --width "$size" --height "$size" --transport $t --ulysses 1 --ring 2
    bench 2 --width "$size" --height "$size" --transport $t --parallel patch --patches 2 --warmup-steps 1
  done
  # FP8 communication (e4m3 q/k/v; e4m3 stale K/V) over IPC
  bench 2 --width "$size" --height "$size" --transport ipc --ulysses 2 --ring 1 --comm-dtype e4m3
  bench 2 --width "$size" --height "$size" --transport ipc --parallel patch --patches 2 --warmup-steps 1 --comm-dtype e4m3
done
python3 - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
one = {r["width"]: r["ms_per_step"] for r in rows if r.get("ranks", 1) == 1}
print(f"{'size':>5} {'ranks':>5} {'method':<14} {'transport':<10} {'ms/step':>8} {'speed-up':>8} {'compute-only':>12} {'exposed':>8} {'MiB/step':>9} {'GiB':>6}")
for r in rows:
    n = r.get("ranks", 1)
    method = "one GPU" if n == 1 else (f"U{r['ulysses']}xR{r['ring']}" if r["method"] == "sequence" else f"patch {r['ulysses']}")
    if r.get("comm_dtype") == "e4m3": method += " fp8"
    t = "-" if n == 1 else r["transport"].split("(")[-1].rstrip(")")
    pr = r.get("per_rank", [])
    worst = max(pr, key=lambda p: p["ms_per_step"]) if pr else None
    print(f"{r['width']:>5} {n:>5} {method:<14} {t:<10} {r['ms_per_step']:8.2f} {one.get(r['width'], 0) / r['ms_per_step']:8.2f} "
          f"{(worst['compute_only_ms'] if worst else r['ms_per_step']):12.2f} {(worst['exposed_comm_ms'] if worst else 0):8.2f} "
          f"{(worst['mib_sent_per_step'] if worst else 0):9.1f} {r['peak_memory_gib']:6.1f}")
PY
