#!/usr/bin/env bash
# GPU ranks on the GPU host: builds (as gpu-host-check.sh), runs the device-transport test
# program at np 2 and 4 (expected values, bus bandwidth) and the gpu_ranks CLI tests, printing
# their result lines. Logs under $OUT (or ./gpu-host-logs).
set -uo pipefail
out=${OUT:-gpu-host-logs}
mkdir -p "$out"
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
nvidia-smi -L
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target fresco test_device_communicator h5_tool test_backend_ops \
  > "$out/build.log" 2>&1 || { grep -m20 -A5 error "$out/build.log"; exit 1; }
cd build-gpu || exit 1
for np in 2 4; do
  timeout 180 mpiexec -n $np --oversubscribe tests/test_device_communicator 64 2>&1 | tee "$out/devcomm_np$np.log" | tail -6
done
rc=0
for np in 2 4; do
  ctest -R "cli_gpu_ranks_np$np" -V > "$out/ranks_np$np.log" 2>&1 || rc=1
  grep -E "ok:|FAIL|SKIP|Passed|Failed" "$out/ranks_np$np.log" | sed 's/^[0-9]*: //' | tail -40
done
exit $rc
