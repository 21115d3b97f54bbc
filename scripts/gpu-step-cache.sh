#!/usr/bin/env bash
# On a GPU host: what a step cache costs and saves (docs/step-cache.md), FLUX.1-dev with random
# weights and 512 text tokens at SIZE², in one call on one GPU:
#  - bench without a cache, then with each method on its forced default pattern (10: computed
#    and cached in turn): the median ms of a computed and of a cached step;
#  - the user's command: generate of one image of STEPS steps with each method and a forced
#    pattern (random weights do not decide like trained ones), ms per computed and cached step
#    from its run record.
# Prints a small table; the JSON and logs go to $OUT (or ./gpu-host-logs). Usage (after a build
# in build-gpu): scripts/gpu-step-cache.sh [SIZE] [STEPS]
source "$(dirname "$0")/gpu-run-common.sh"
declare -A caches=([none]="" [fbcache]="--cache fbcache" [dbcache]="--cache dbcache"
                   [teacache]="--cache teacache")
for name in none fbcache dbcache teacache; do
  # shellcheck disable=SC2086
  "$B" bench --width "$size" --height "$size" --steps 10 --json ${caches[$name]} > "$out/cache_bench_${name}_$size.json" \
    2> "$out/cache_bench_${name}_$size.err" || { tail "$out/cache_bench_${name}_$size.err"; exit 1; }
  # shellcheck disable=SC2086
  "$B" generate --weights random:0 --model flux-dev --prompts "$tmp/p.h5" --out "$tmp/gen_$name" \
    ${caches[$name]} ${caches[$name]:+--cache-pattern 1011011011} --record "$out/cache_generate_${name}_$size.json" \
    > "$out/cache_generate_${name}_$size.log" 2>&1 || { tail -20 "$out/cache_generate_${name}_$size.log"; exit 1; }
done
python3 - "$out" "$size" "$BENCH_JSON_PY" <<'PY'
import json, sys
out, size = sys.argv[1], sys.argv[2]
exec(sys.argv[3])  # bench(path): gpu-run-common.sh
base = bench(f"{out}/cache_bench_none_{size}.json")
print(f"{size}², {base['device']}, {base['dtype']}; bench without a cache: {base['ms_per_step']:.2f} ms/step")
print("| cache | bench computed ms | bench cached ms | cached / uncached step | generate computed ms | generate cached ms | decisions |")
print("|---|---|---|---|---|---|---|")
for name in ["none", "fbcache", "dbcache", "teacache"]:
    b = bench(f"{out}/cache_bench_{name}_{size}.json")
    g = json.load(open(f"{out}/cache_generate_{name}_{size}.json"))["images"][0]
    cached = b.get("ms_per_cached_step", 0.0)
    print(f"| {b.get('cache', 'none')} | {b['ms_per_step']:.2f} | {cached:.2f} | "
          f"{cached / base['ms_per_step'] * 100:.1f} % | {g['ms_per_step']:.2f} | {g.get('ms_per_cached_step', 0):.2f} | "
          f"{g.get('cache_computed', '-')} |")
PY
