#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for a
# bounded time on a copy of its seed corpus (fuzz/corpus/*): the safetensors header parser, the
# HDF5 schema readers and the INI config. Opt-in, not part of `make test`.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30)
# A crash leaves crash-* / leak-* / timeout-* beside the build and fails the script; add the
# input to the corpus and fix the parser (the input becomes a regression seed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${FRESCO_FUZZ_BUILD:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -DFRESCO_FUZZ=ON -DFRESCO_CUDA=OFF -DFRESCO_TESTS=OFF \
  -DFRESCO_LINK_CHECKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_safetensors fuzz_h5_readers fuzz_config
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for pair in safetensors:fuzz_safetensors h5:fuzz_h5_readers config:fuzz_config; do
  corpus=${pair%%:*} target=${pair##*:}
  work=$(mktemp -d)
  cp fuzz/corpus/"$corpus"/* "$work"/
  echo "== $target: $seconds s on fuzz/corpus/$corpus"
  (cd "$build" && "./fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
     -print_final_stats=1 "$work") || status=1
  rm -rf "$work"
done
exit $status
