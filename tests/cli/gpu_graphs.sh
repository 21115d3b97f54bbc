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
# Graphs across images of other shapes with the decoder in between (it runs eagerly on the same
# backend and may grow its scratch): image 1 has another size, image 2 the first one's again;
# replayed and recaptured steps equal eager ones bit for bit.
"$FRESCO" init-weights --model ae-tiny --seed 2 ae.h5 >/dev/null
cp prompts.h5 shapes.h5
"$H5_TOOL" setint shapes.h5 /prompts/1 width 96
"$H5_TOOL" setint shapes.h5 /prompts/1 height 32
for g in on off; do
  "$FRESCO" generate --backend cuda --cuda-graphs $g --weights weights.h5 --prompts shapes.h5 --vae ae.h5 \
    --out shapes_$g --record shapes_$g.json >/dev/null
done
for i in 0 1 2; do
  "$H5_TOOL" compare shapes_on/img_$i.h5 shapes_off/img_$i.h5 /latent 0
  "$H5_TOOL" compare shapes_on/img_$i.h5 shapes_off/img_$i.h5 /image 0
done
grep -q '"cuda_graphs": true' shapes_on.json || fail "run record: graphs on not recorded"
echo "ok: graphs across image shapes with decoding in between = eager"
# Random weights made on the GPU against the same seed's file (the device's logf/sinf are a
# few ulps from the host's, far below the bf16 rounding of a bf16 run).
"$FRESCO" generate --backend cuda --dtype f32 --weights random:3 --model flux-tiny --prompts prompts.h5 --out rnd >/dev/null
"$H5_TOOL" compare rnd/img_0.h5 on_f32/img_0.h5 /latent 1e-4
"$FRESCO" bench --backend cuda --model flux-tiny --width 64 --height 64 --txt-len 8 --steps 5 --json > on.json
grep -q '"cuda_graphs": true' on.json || { cat on.json; fail "bench did not replay a graph"; }
"$FRESCO" bench --backend cuda --model flux-tiny --width 64 --height 64 --txt-len 8 --steps 5 --cuda-graphs off --json > off.json
grep -q '"cuda_graphs": false' off.json || fail "bench --cuda-graphs off"
echo "ok: CUDA graphs replay = eager, same seed same bits, random weights on the GPU"
