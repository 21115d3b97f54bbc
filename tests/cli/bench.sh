# `fresco bench` on the CPU backend with a small preset: the JSON report has every field, the
# numbers are sane, --profile lists ops, and random weights (--weights random:SEED) serve
# forward and generate without a file.
source "$(dirname "$0")/common.sh"
"$FRESCO" bench --backend cpu --model flux-tiny --width 64 --height 48 --txt-len 7 --steps 5 \
  --profile --json --threads 2 > bench.json
# The JSON object is the last part of the output (after the configuration echo).
sed -n '/^{/,$p' bench.json > report.json
for field in model width height txt_len tokens backend device dtype cuda_graphs steps ms_per_step \
             tflop_per_step tflops floor_ms fraction_of_floor peak_memory_bytes profile; do
  grep -q "\"$field\":" report.json || { cat report.json; fail "bench JSON lacks \"$field\""; }
done
grep -q '"backend": "cpu"' report.json || fail "bench did not run on the CPU"
grep -q '"dtype": "f32"' report.json || fail "bench on the CPU should default to f32"
grep -q '"cuda_graphs": false' report.json || fail "the CPU backend cannot capture graphs"
grep -q '"op": "linear' report.json || fail "--profile lists no linear"
ms=$(grep -o '"ms_per_step": [0-9.e+-]*' report.json | awk '{print $2}')
awk -v m="$ms" 'BEGIN { exit !(m > 0) }' || fail "ms_per_step $ms is not positive"
# The spec's FLOP count at FLUX.1-dev 1024x1024 (74.4 TFLOP per step) is what the report uses.
"$FRESCO" bench --backend cpu --model flux-tiny --width 32 --height 32 --txt-len 3 --steps 5 >text.txt
grep -q "ms median of 5" text.txt || { cat text.txt; fail "text report"; }
# With a step cache: the forced default pattern (10), a computed and a cached step reported apart.
"$FRESCO" bench --backend cpu --model flux-tiny --width 32 --height 32 --txt-len 3 --steps 6 --cache fbcache \
  --json > cache.json
python3 - <<'PY' || fail "bench --cache JSON"
import json
text = open("cache.json").read()
j = json.loads(text[text.index("\n{") + 1:] if not text.startswith("{") else text)
assert j["cache"] == "fbcache F1B0 pattern 10", j["cache"]
assert j["ms_per_cached_step"] > 0 and j["ms_per_step"] > 0, j  # figures, not a timing assertion
PY
expect_error "applies to generate" -- "$FRESCO" bench --backend cpu --model flux-tiny --cache fbcache --cache-threshold 0.1
expect_error "at least 5" -- "$FRESCO" bench --backend cpu --model flux-tiny --steps 2
expect_error "random:SEED" -- "$FRESCO" bench --backend cpu --model flux-tiny --weights random:x

# Random weights without a file: forward with --weights random:3 equals forward with the file
# init-weights writes for seed 3 (the same rule and the same generator on the host).
"$FRESCO" init-weights --model flux-tiny --seed 3 w.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 --width 64 --height 48 --steps 2 p.h5 >/dev/null
"$FRESCO" generate --backend cpu --weights w.h5 --prompts p.h5 --out file_out >/dev/null
"$FRESCO" generate --backend cpu --weights random:3 --model flux-tiny --prompts p.h5 --out random_out >/dev/null
"$H5_TOOL" compare random_out/img_0.h5 file_out/img_0.h5 /latent 0
expect_error "needs --model" -- "$FRESCO" generate --backend cpu --weights random:3 --prompts p.h5 --out x
echo "ok: bench JSON, random weights"
