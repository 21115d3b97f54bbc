#!/usr/bin/env bash
# On a GPU host: what --dtype fp8 gains and costs (docs/performance.md "FP8"), FLUX.1-dev with
# random weights and 512 text tokens at SIZE², in one call on one GPU:
#  - bench in bf16 and in fp8 (same process kind, same machine, one after the other);
#  - the user's command: generate of one image of STEPS steps in bf16 and in fp8 (ms per step
#    from the run records) and the final latents compared (PSNR, relative L2: fp8 against bf16);
#  - with PROFILE=1, the per-op profile of an fp8 step (bench --profile) into $OUT.
# Prints a small table; JSON and logs go to $OUT (or ./gpu-host-logs). Usage (after a build in
# build-gpu): scripts/gpu-fp8.sh [SIZE] [STEPS]
source "$(dirname "$0")/gpu-run-common.sh"
for dtype in bf16 fp8; do
  "$B" bench --width "$size" --height "$size" --steps 10 --dtype $dtype --json > "$out/fp8_bench_${dtype}_$size.json" \
    2> "$out/fp8_bench_${dtype}_$size.err" || { tail "$out/fp8_bench_${dtype}_$size.err"; exit 1; }
  "$B" generate --weights random:0 --model flux-dev --prompts "$tmp/p.h5" --out "$tmp/gen_$dtype" --dtype $dtype \
    --record "$out/fp8_generate_${dtype}_$size.json" > "$out/fp8_generate_${dtype}_$size.log" 2>&1 \
    || { tail -20 "$out/fp8_generate_${dtype}_$size.log"; exit 1; }
done
"$B" compare "$tmp/gen_fp8/img_0.h5" "$tmp/gen_bf16/img_0.h5" > "$out/fp8_latent_compare_$size.txt" 2>&1
if [ "${PROFILE:-0}" = 1 ]; then
  "$B" bench --width "$size" --height "$size" --steps 5 --dtype fp8 --profile > "$out/fp8_profile_$size.txt" 2>&1
fi
python3 - "$out" "$size" "$steps" "$BENCH_JSON_PY" <<'PY'
import json, sys
out, size, steps = sys.argv[1], sys.argv[2], sys.argv[3]
exec(sys.argv[4])  # bench(path): gpu-run-common.sh
print(f"| {size}² | bench ms/step | TFLOP/s (spec count) | GiB | generate ms/step ({steps} steps) |")
print("|---|---|---|---|---|")
for dtype in ["bf16", "fp8"]:
    b = bench(f"{out}/fp8_bench_{dtype}_{size}.json")
    g = json.load(open(f"{out}/fp8_generate_{dtype}_{size}.json"))["images"][0]
    print(f"| {b['dtype']} ({b['device']}) | {b['ms_per_step']:.2f} | {b['tflops']:.0f} | {b['peak_memory_gib']:.1f} | "
          f"{g['ms_per_step']:.2f} |")
print("final latent, fp8 against bf16:", open(f"{out}/fp8_latent_compare_{size}.txt").read().strip().replace("\n", "; "))
PY
