#!/usr/bin/env bash
# One measuring run on the GPU host (issue 13): build for Hopper, the gpu-labelled tests, then
# `fresco bench` at 1024^2 and 2048^2 with CUDA graphs on and off, a per-op profile at each
# size, and A/B pairs of the environment switches named in FRESCO_AB (e.g.
# "FRESCO_CUDA_ROPE_ROWS=0 A=0,B=0"; the switches: src/core/tuning.cpp): the same bench with the
# switch(es), on the same machine.
# Usage: FRESCO_AB="..." bash scripts/gpu-bench.sh   (carry .gpu-host; see the BRIEF)
# Logs go to $OUT (or ./gpu-bench-logs); a short table is printed last.
set -uo pipefail
out=${OUT:-gpu-bench-logs}
mkdir -p "$out"
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv | tee "$out/gpu.txt"
t0=$(date +%s)
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" >> "$out/build.log" 2>&1 || { grep -m20 -A5 error "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
f=build-gpu/fresco
js=/tmp/fresco-bench-json; rm -rf "$js"; mkdir -p "$js"  # $OUT holds at most 8 files
out=$(cd "$out" && pwd)
(cd build-gpu && timeout 300 ctest -L gpu -j 2 --output-on-failure > "$out/ctest.log" 2>&1); echo "ctest -L gpu: rc $?"
grep -E "tests passed|Failed|Skipped|\*\*\*" "$out/ctest.log"
grep -E "fill_random|passed, " "$out/ctest.log" | grep -v " OK" | head -5

bench() {  # bench NAME ENV... -- ARGS...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  echo "=== $name: ${envs[*]} fresco bench $*" >> "$out/bench.log"
  env "${envs[@]}" timeout 240 $f bench --json "$@" > "$js/$name.json" 2>> "$out/bench.log"
  sed -n '/^{/,$p' "$js/$name.json" >> "$out/bench.log"
}
row() {  # one table row from a JSON report
  local j=$1
  local g=$(grep -o '"[a-z_]*": [^,]*' "$j" | sed 's/"//g' | tr '\n' ';')
  awk -v s="$g" -v n="$(basename "$j" .json)" 'BEGIN {
    split(s, kv, ";"); for (i in kv) { split(kv[i], p, ": "); v[p[1]] = p[2] }
    printf "%-22s %5sx%-5s graphs=%-5s %9.2f ms %7.1f TFLOP/s %6.1f%% of floor %6.1f GiB\n",
      n, v["width"], v["height"], v["cuda_graphs"], v["ms_per_step"], v["tflops"], 100 * v["fraction_of_floor"], v["peak_memory_gib"] }'
}
for s in 1024 2048; do
  bench "b${s}_graphs" -- --width $s --height $s --steps 10
  bench "b${s}_eager" -- --width $s --height $s --steps 10 --cuda-graphs off
  for ab in ${FRESCO_AB:-}; do  # A=0 or A=0,B=1 (several switches at once: "b*_all")
    name=${ab%%=*}; [[ $ab == *,* ]] && name=all
    # shellcheck disable=SC2086
    bench "b${s}_${name}" ${ab//,/ } -- --width $s --height $s --steps 10
  done
done
if [ -n "${FRESCO_FULL_SUITE:-}" ]; then  # the rest of the suite, --backend auto = cuda here
  (cd build-gpu && timeout 240 ctest -LE gpu -j 8 > "$out/ctest-all.log" 2>&1); echo "ctest -LE gpu: rc $?"
  grep -E "tests passed|\*\*\*" "$out/ctest-all.log" | head -20
fi
for s in 1024 2048; do
  echo "=== profile $s" >> "$out/profile.log"
  timeout 240 $f bench --width $s --height $s --steps 5 --profile >> "$out/profile.log" 2>&1
done
echo "total: $(( $(date +%s) - t0 )) s"
for s in 1024 2048; do
  echo "--- profile $s (top 14) ---"
  sed -n "/=== profile $s/,/=== profile/p" "$out/profile.log" | grep -A16 "per op" | head -17
done
echo "--- table ($(head -2 "$out/gpu.txt" | tail -1)) ---"
for j in "$js"/b*.json; do row "$j"; done
