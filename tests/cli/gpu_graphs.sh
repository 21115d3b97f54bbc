# Whole-step CUDA graphs on the GPU (skipped with exit 77 elsewhere): generate with graphs on
# equals generate with graphs off bit for bit, the same seed twice gives the same bits, and the
# bench runs both ways.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
if ! grep -q "^backend cuda" info.txt; then
  echo "SKIP: no CUDA backend here ($(grep -E 'CUDA' info.txt | head -1))"; exit 77
fi
make_tiny_fixtures 3
for dt in f32 bf16; do
  "$FRESCO" generate --backend cuda --dtype $dt --cuda-graphs on --weights weights.h5 --prompts prompts.h5 \
    --out on_$dt >/dev/null
  "$FRESCO" generate --backend cuda --dtype $dt --cuda-graphs on --weights weights.h5 --prompts prompts.h5 \
    --out again_$dt >/dev/null
  "$FRESCO" generate --backend cuda --dtype $dt --cuda-graphs off --weights weights.h5 --prompts prompts.h5 \
    --out off_$dt >/dev/null
  for i in 0 1 2; do
    "$H5_TOOL" compare on_$dt/img_$i.h5 off_$dt/img_$i.h5 /latent 0
    "$H5_TOOL" compare on_$dt/img_$i.h5 again_$dt/img_$i.h5 /latent 0
  done
done
# Random weights made on the GPU against the same seed's file (the device's logf/sinf are a
# few ulps from the host's, far below the bf16 rounding of a bf16 run).
"$FRESCO" generate --backend cuda --weights random:3 --model flux-tiny --prompts prompts.h5 --out rnd >/dev/null
"$H5_TOOL" compare rnd/img_0.h5 on_f32/img_0.h5 /latent 1e-4
"$FRESCO" bench --backend cuda --model flux-tiny --width 64 --height 64 --txt-len 8 --steps 5 --json > on.json
grep -q '"cuda_graphs": true' on.json || { cat on.json; fail "bench did not replay a graph"; }
"$FRESCO" bench --backend cuda --model flux-tiny --width 64 --height 64 --txt-len 8 --steps 5 --cuda-graphs off --json > off.json
grep -q '"cuda_graphs": false' off.json || fail "bench --cuda-graphs off"
echo "ok: CUDA graphs replay = eager, same seed same bits, random weights on the GPU"
