#!/usr/bin/env bash
# The decoder on one GPU (issue 15), one measuring call on the GPU host: builds fresco,
# test_backend_ops and h5_tool for Hopper, runs the decoder's op tests on the CUDA backend,
# then `fresco bench-decode` (flux-ae, bf16, random weights made on the device) at each size of
# SIZES, then the gpu checks of tests/cli/gpu_backend.sh and gpu_ranks.sh unless TESTS=0.
# Usage: [SIZES="1024 2048 4096"] [AB="FRESCO_CUDNN_CONV=0"] [TESTS=1] [TABLES=1] bash scripts/gpu-decode-bench.sh
#   TABLES=1: also each convolution shape's time alone, as text.
#   AB: environment switches timed at 1024^2 beside the default (e.g. the direct conv kernel).
# Logs go to $OUT (or ./gpu-decode-logs); a short table is printed last.
set -uo pipefail
out=${OUT:-gpu-decode-logs}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
nvidia-smi --query-gpu=name,memory.total,power.limit --format=csv,noheader | tee "$out/gpu.txt"
t0=$(date +%s)
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target fresco test_backend_ops h5_tool >> "$out/build.log" 2>&1 \
  || { grep -m20 -A5 error "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
f=build-gpu/fresco
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# The decoder's ops against the CPU reference (cuDNN convolutions, head dim 512 attention).
timeout 120 build-gpu/tests/test_backend_ops --backend cuda --op conv2d --op attention --op attention_merge \
  --op group_norm --op group_sums --op upsample_nearest > "$out/ops.log" 2>&1
echo "decoder op tests on cuda: rc $? ($(tail -1 "$out/ops.log"))"
grep -E "FAIL" "$out/ops.log" | head -10
# The same convolutions in bands of rows (a tiny workspace limit), as large images run them.
FRESCO_CUDNN_CONV_WORKSPACE_MB=0.01 timeout 60 build-gpu/tests/test_backend_ops --backend cuda --op conv2d \
  > "$out/ops_bands.log" 2>&1
echo "conv2d in bands on cuda: rc $? ($(tail -1 "$out/ops_bands.log"))"
grep -E "FAIL" "$out/ops_bands.log" | head -10

rows=()
for s in ${SIZES:-1024 2048 4096}; do
  # The decode's parts (FRESCO_DECODE_PROFILE) and the backend's paths (FRESCO_CUDA_VERBOSE).
  j=$(FRESCO_DECODE_PROFILE=1 FRESCO_CUDA_VERBOSE=1 timeout 150 $f bench-decode --width "$s" --height "$s" --repeat 3 \
      --json 2> /tmp/decode-bench.err | tee -a "$out/bench.log" | grep '^{')
  cat /tmp/decode-bench.err >> "$out/bench.log"
  echo "${s}^2: $(grep 'decode profile' /tmp/decode-bench.err | tail -1)"
  grep -E "conv2d:|linear:" /tmp/decode-bench.err | cut -c1-400
  [ -n "$j" ] && rows+=("default $j") || { echo "bench-decode ${s}: failed"; tail -5 /tmp/decode-bench.err; }
  if [ -n "${TABLES:-}" ]; then  # each convolution shape timed alone, as text
    timeout 150 $f bench-decode --width "$s" --height "$s" --repeat 1 2>&1 | tee -a "$out/bench.log" | grep -E "^ +[0-9]+->|alone"
  fi
done
for ab in ${AB:-}; do
  j=$(env "$ab" timeout 120 $f bench-decode --width 1024 --height 1024 --repeat 3 --no-convs --json 2>> "$out/bench.log" | grep '^{')
  [ -n "$j" ] && rows+=("$ab $j")
done

if [ "${TESTS:-1}" = 1 ]; then
  mpi=$(grep -m1 '^MPIEXEC_EXECUTABLE' build-gpu/CMakeCache.txt | cut -d= -f2)
  export FRESCO=$PWD/$f H5_TOOL=$PWD/build-gpu/tests/h5_tool GOLDEN_DIR=$PWD/tests/golden MPIEXEC=${mpi:-mpiexec} \
    TEST_BACKEND_OPS=$PWD/build-gpu/tests/test_backend_ops OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
  timeout 240 bash tests/cli/gpu_backend.sh > "$out/gpu_backend.log" 2>&1; echo "gpu_backend.sh: rc $?"
  tail -4 "$out/gpu_backend.log"
  timeout 200 bash tests/cli/gpu_ranks.sh 2 > "$out/gpu_ranks.log" 2>&1; echo "gpu_ranks.sh 2: rc $?"
  tail -2 "$out/gpu_ranks.log"
fi

echo "---- bench-decode ($(cat "$out/gpu.txt"))"
printf "%-22s %9s %9s %9s %9s %10s %8s\n" "run" "size" "ms" "TFLOP/s" "peak GiB" "conv ceil" "of ceil"
for r in "${rows[@]}"; do
  name=${r%% *}
  j=${r#* }
  g=$(echo "$j" | tr -d '{}' | tr ',' '\n' | sed 's/"//g')
  v() { echo "$g" | grep "^$1:" | cut -d: -f2; }
  printf "%-22s %9s %9.1f %9.0f %9.2f %10.0f %7.0f%%\n" "$name" "$(v width)" "$(v ms)" "$(v tflops)" \
    "$(v peak_gib)" "$(v conv_ceiling_tflops)" "$(awk -v x="$(v fraction_of_conv_ceiling)" 'BEGIN { print 100 * x }')"
done
