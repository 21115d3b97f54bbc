#!/usr/bin/env bash
# Build and test on the project's GPU host (see the BRIEF's recipe): unpacks the carried
# .gpu-host packages, configures for Hopper (90a), builds, runs the whole CTest suite (the gpu
# label included) and `fresco info`. Logs go to $OUT (or ./gpu-host-logs).
set -uo pipefail
out=${OUT:-gpu-host-logs}
mkdir -p "$out"
source "$(dirname "$0")/gpu-host-env.sh" || exit 1
nvidia-smi -L | tee "$out/gpu.txt"
# shellcheck disable=SC2086
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release $flags "${extra[@]}" > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -m20 -A5 error "$out/build.log"; exit 1; }
(cd build-gpu && ctest -j 8 --output-on-failure > "$out/ctest.log" 2>&1); rc=$?
build-gpu/fresco info | tee "$out/info.txt"
grep -E "tests passed|Failed|Skipped|\*\*\*" "$out/ctest.log"
exit $rc
