#!/usr/bin/env bash
# The 4- and 8-GPU scaling run (issue 19) on a GPU host with GPUS GPUs (default: all visible):
# build for Hopper; the gpu-labelled GPU-rank tests at np GPUS; `fresco bench` (FLUX.1-dev shape,
# random bf16 weights, 512 text tokens) at SIZES on 1, 2, 4 (and 8) GPUs for Ulysses-P, Ring-P,
# USP, Torus over emulated nodes, DistriFusion, with and without FP8 communication; the decoder
# at 2048² and 4096² on one GPU; then `fresco sweep` over the same GPUs for the JSON records and the PNG
# plots (speed-up, efficiency, exposed communication, model against measurement).
# Records: $OUT/bench.jsonl, $OUT/decode.jsonl, $OUT/sweep/ (sweep.jsonl and the plots). A table
# is printed last. Usage: GPUS=8 SIZES="1024 2048 4096" bash scripts/gpu-scaling-run.sh
set -uo pipefail
out=${OUT:-gpu-scaling-logs}
mkdir -p "$out"; out=$(cd "$out" && pwd)
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
gpus=${GPUS:-$(nvidia-smi -L | wc -l)}
sizes=${SIZES:-1024 2048 4096}
nvidia-smi -L | tee "$out/gpu.txt"
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target fresco test_device_communicator h5_tool test_backend_ops \
  >> "$out/build.log" 2>&1 || { grep -m20 -A5 error "$out/build.log"; exit 1; }
cd build-gpu || exit 1
timeout 300 mpiexec -n "$gpus" tests/test_device_communicator 256 2>&1 | tee "$out/devcomm.log" | grep -v "^--" | tail -5
[ "${SKIP_TESTS:-0}" = 1 ] || { bash ../tests/cli/gpu_ranks.sh "$gpus" > "$out/ranks.log" 2>&1; echo "gpu_ranks np $gpus: rc $?"; }
: > "$out/bench.jsonl"
bench() {  # bench NP ARGS...
  local np=$1; shift
  timeout 600 mpiexec -n "$np" ./fresco bench --json --steps 6 --warmup 2 "$@" 2> "$out/bench_err.log" |
    sed -n '/^{/,$p' | python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())))' >> "$out/bench.jsonl" ||
    echo "bench failed: np $np $*"
}
for size in $sizes; do
  s=(--width "$size" --height "$size")
  bench 1 "${s[@]}"
  for p in 2 4 8; do
    [ "$p" -le "$gpus" ] || continue
    bench "$p" "${s[@]}" --ulysses "$p" --ring 1
    bench "$p" "${s[@]}" --ulysses 1 --ring "$p"
    bench "$p" "${s[@]}" --ulysses "$p" --ring 1 --comm-dtype e4m3
    [ "$p" -ge 4 ] && bench "$p" "${s[@]}" --ulysses $((p / 2)) --ring 2
    [ "$p" -ge 4 ] && bench "$p" "${s[@]}" --ulysses $((p / 2)) --ring 2 --ranks-per-node $((p / 2)) --inter-node torus
    bench "$p" "${s[@]}" --parallel patch --patches "$p" --warmup-steps 1
    bench "$p" "${s[@]}" --parallel patch --patches "$p" --warmup-steps 1 --comm-dtype e4m3
  done
done
: > "$out/decode.jsonl"
# One GPU: `fresco bench-decode` times one rank's decode (a group's patch-parallel decode is timed
# inside `fresco generate --vae` only, for now).
for size in 2048 4096; do
  for p in 1; do
    timeout 600 mpiexec -n "$p" ./fresco bench-decode --width "$size" --height "$size" --repeat 3 --json 2>/dev/null |
      sed -n '/^{/,$p' | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["ranks"]='"$p"'; print(json.dumps(r))' \
      >> "$out/decode.jsonl" || echo "bench-decode failed: np $p $size"
  done
done
ranks=1; for p in 2 4 8; do [ "$p" -le "$gpus" ] && ranks="$ranks,$p"; done
./fresco sweep --weights random:0 --model flux-dev --backend cuda --dtype bf16 --out "$out/sweep" --ranks "$ranks" \
  --methods ulysses,ring,patch --resolutions 1024x1024,2048x2048 --steps 4 --txt-len 512 \
  --predict-ranks 16,32,64 > "$out/sweep.log" 2>&1 || echo "sweep failed (see sweep.log)"
python3 - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
one = {r["width"]: r["ms_per_step"] for r in rows if r.get("ranks", 1) == 1}
print(f"{'size':>5} {'GPUs':>4} {'method':<22} {'ms/step':>8} {'speed-up':>8} {'exposed':>8}")
for r in rows:
    n = r.get("ranks", 1)
    if n == 1: m = "one GPU"
    elif r["method"] == "patch": m = f"patch {r['ulysses']}"
    else: m = f"U{r['ulysses']}xR{r['ring']}"
    if r.get("comm_dtype") == "e4m3": m += " fp8"
    if "torus" in r.get("transport", ""): m += " torus"
    worst = max(r.get("per_rank", [{"exposed_comm_ms": 0, "ms_per_step": 0}]), key=lambda p: p["ms_per_step"])
    print(f"{r['width']:>5} {n:>4} {m:<22} {r['ms_per_step']:8.2f} {one.get(r['width'], 0) / r['ms_per_step']:8.2f} {worst.get('exposed_comm_ms', 0):8.2f}")
PY
