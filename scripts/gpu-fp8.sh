#!/usr/bin/env bash
# On a GPU host: what --dtype fp8 and --fp8-attention gain and cost (docs/performance.md "FP8"),
# FLUX.1-dev with random weights and 512 text tokens at SIZE², in one call on one GPU, for the
# precisions bf16, fp8 (the token linears in e4m3) and fp8+attn (fp8 with --fp8-attention):
#  - bench of each (same process kind, same machine, one after the other);
#  - the user's command: generate of one image of STEPS steps in each (ms per step from the run
#    records) and the final latents compared (PSNR, relative L2: each against bf16);
#  - with PROFILE=1, the per-op profile of an fp8+attn step (bench --profile) into $OUT.
# Prints a small table; JSON and logs go to $OUT (or ./gpu-host-logs). Usage (after a build in
# build-gpu): scripts/gpu-fp8.sh [SIZE] [STEPS]
source "$(dirname "$0")/gpu-run-common.sh"
declare -A flags=([bf16]="--dtype bf16" [fp8]="--dtype fp8" [fp8attn]="--dtype fp8 --fp8-attention")
variants=(bf16 fp8 fp8attn)
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086 # the flags are words
  "$B" bench --width "$size" --height "$size" --steps 10 ${flags[$v]} --json > "$out/fp8_bench_${v}_$size.json" \
    2> "$out/fp8_bench_${v}_$size.err" || { tail "$out/fp8_bench_${v}_$size.err"; exit 1; }
  # shellcheck disable=SC2086
  "$B" generate --weights random:0 --model flux-dev --prompts "$tmp/p.h5" --out "$tmp/gen_$v" ${flags[$v]} \
    --record "$out/fp8_generate_${v}_$size.json" > "$out/fp8_generate_${v}_$size.log" 2>&1 \
    || { tail -20 "$out/fp8_generate_${v}_$size.log"; exit 1; }
  [ "$v" = bf16 ] || "$B" compare "$tmp/gen_$v/img_0.h5" "$tmp/gen_bf16/img_0.h5" > "$out/fp8_latent_compare_${v}_$size.txt" 2>&1
done
if [ "${PROFILE:-0}" = 1 ]; then
  "$B" bench --width "$size" --height "$size" --steps 5 --dtype fp8 --fp8-attention --profile \
    > "$out/fp8_profile_$size.txt" 2>&1
fi
python3 - "$out" "$size" "$steps" "$BENCH_JSON_PY" <<'PY'
import json, sys
out, size, steps = sys.argv[1], sys.argv[2], sys.argv[3]
exec(sys.argv[4])  # bench(path): gpu-run-common.sh
print(f"| {size}² | bench ms/step | TFLOP/s (spec count) | GiB | generate ms/step ({steps} steps) | final latent vs bf16 |")
print("|---|---|---|---|---|---|")
for v in ["bf16", "fp8", "fp8attn"]:
    b = bench(f"{out}/fp8_bench_{v}_{size}.json")
    g = json.load(open(f"{out}/fp8_generate_{v}_{size}.json"))["images"][0]
    cmp = "" if v == "bf16" else open(f"{out}/fp8_latent_compare_{v}_{size}.txt").read().strip().replace("\n", "; ")
    print(f"| {v} ({b['device']}) | {b['ms_per_step']:.2f} | {b['tflops']:.0f} | {b['peak_memory_gib']:.1f} | "
          f"{g['ms_per_step']:.2f} | {cmp} |")
PY
