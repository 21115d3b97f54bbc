#!/usr/bin/env bash
# On a GPU host: `fresco generate` with its default options against `fresco bench` at the same
# shape (FLUX.1-dev, random weights, 512 text tokens), in one process lifetime each, on the same
# GPU: the user's command must get the benchmark's ms/step (issue 24: within 3 %). Prints a
# small table; the records go to $OUT (or ./gpu-host-logs). Usage (after a build in build-gpu):
#   scripts/gpu-generate-vs-bench.sh [SIZE] [STEPS]
source "$(dirname "$0")/gpu-run-common.sh"
"$B" bench --width "$size" --height "$size" --json > "$out/bench_$size.json" 2> "$out/bench_$size.err" ||
  { tail "$out/bench_$size.err"; exit 1; }
"$B" generate --weights random:0 --model flux-dev --prompts "$tmp/p.h5" --out "$tmp/gen" \
  --record "$out/generate_$size.json" > "$out/generate_$size.log" 2>&1 || { tail -20 "$out/generate_$size.log"; exit 1; }
"$B" bench --width "$size" --height "$size" --json > "$out/bench_${size}_again.json" 2>> "$out/bench_$size.err"
python3 - "$out" "$size" "$BENCH_JSON_PY" <<'PY'
import json, sys
out, size = sys.argv[1], sys.argv[2]
exec(sys.argv[3])  # bench(path): gpu-run-common.sh
b = bench(f"{out}/bench_{size}.json")
b2 = bench(f"{out}/bench_{size}_again.json")
g = json.load(open(f"{out}/generate_{size}.json"))
im = g["images"][0]
print(f"| {size}² | {b['device']} | bench {b['dtype']} | {b['ms_per_step']:.1f} then {b2['ms_per_step']:.1f} ms |")
print(f"| {size}² | {g['engine']['device']} | generate defaults ({g['engine']['dtype']}, graphs "
      f"{g['engine']['cuda_graphs']}) | {im['ms_per_step']:.1f} ms (median of the replayed steps; all: "
      f"{', '.join(f'{x:.1f}' for x in im['step_ms'])}) |")
print(f"generate / bench: {im['ms_per_step'] / b['ms_per_step']:.4f} and {im['ms_per_step'] / b2['ms_per_step']:.4f}")
PY
