# Patch-parallel decoding on NP ranks equals one rank's (and the PyTorch golden picture):
# `fresco decode` of the golden ae-tiny latent (10 rows: uneven bands at np 4) and
# `fresco generate --vae`; PNGs are written with provenance chunks; a non-finite picture is
# reported and never written.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
VAE=$GOLDEN_DIR/ae_tiny_weights.h5
run_np "$NP" decode --vae "$VAE" "$GOLDEN_DIR/ae_tiny_decode.h5" --out golden > decode.log
grep -q "rank 0 decoded in .* peak memory" decode.log || { cat decode.log; fail "no per-rank report"; }
"$H5_TOOL" compare golden.decoded.h5 "$GOLDEN_DIR/ae_tiny_decode.h5" /image 1e-5 || fail "decode differs from the golden picture"
head -c 8 golden.png | od -An -c | grep -q "P   N   G" || fail "golden.png is not a PNG"

make_tiny_fixtures 2
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --vae "$VAE" --out single >/dev/null
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --vae "$VAE" --out par >/dev/null
for i in 0 1; do
  "$H5_TOOL" compare "par/img_$i.h5" "single/img_$i.h5" /image 1e-5 || fail "image $i differs from one rank's"
  [ -s "par/img_$i.png" ] || fail "img_$i.png missing"
  grep -aq "seed" "par/img_$i.png" || fail "img_$i.png has no seed text chunk"
done
[ "$("$H5_TOOL" shape par/img_0.h5 /image)" = "[3, 12, 16]" ] || fail "picture shape"
run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --vae "$VAE" --no-decode --out latents >/dev/null
[ ! -e latents/img_0.png ] || fail "--no-decode wrote a PNG"

# A decoder that produces NaN: the image is reported, and neither PNG nor HDF5 is written.
cp "$VAE" poisoned.h5
"$H5_TOOL" poison poisoned.h5 /decoder/conv_out/bias
# Non-finite autoencoder weights are refused at set-up, naming the tensor, before any image.
expect_error "decoder.conv_out.bias (1 of 3 values)" -- \
  run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --vae poisoned.h5 --out bad
[ ! -e bad ] || [ -z "$(ls -A bad)" ] || { ls bad; fail "an image was written with non-finite weights"; }
# Transformer weights given as the autoencoder; a latent of the wrong shape.
expect_error "weights.h5 holds flux-tiny weights, not an autoencoder's" -- \
  run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --vae weights.h5 --out wrong
expect_error "inputs.h5: has no dataset /latent\|inputs.h5 has no dataset /latent" -- \
  run_np "$NP" decode --vae "$VAE" "$GOLDEN_DIR/flux_tiny_inputs.h5" --out nothing
[ ! -e nothing.png ] || fail "decode left an output"
# The decoder benchmark (random weights made by the backend) on NP ranks decoding one image
# together: a JSON report with a time, the FLOPs of the preset at this size, every convolution
# shape timed and one entry per rank with its band (20 latent rows: uneven at np 3 and 4);
# a bad size, and more ranks than latent rows, are refused.
run_np "$NP" bench-decode --backend cpu --model ae-tiny --width 24 --height 40 --repeat 1 --json > bench.json
grep -q '"model":"ae-tiny","width":24,"height":40' bench.json || fail "bench-decode: $(cat bench.json)"
grep -q '"non_finite":0' bench.json || fail "bench-decode: non-finite output: $(cat bench.json)"
grep -q "\"ranks\":$NP," bench.json || fail "bench-decode: not on $NP ranks: $(cat bench.json)"
[ "$(grep -o '"latent_rows":[0-9]*' bench.json | awk -F: '{ s += $2 } END { print s }')" = 20 ] ||
  fail "bench-decode: the bands do not cover the latent: $(cat bench.json)"
value() { grep -o "\"$1\":[0-9.e+-]*" bench.json | head -1 | cut -d: -f2; }
awk -v v="$(value ms)" 'BEGIN { exit !(v > 0) }' || fail "bench-decode: no time: $(cat bench.json)"
awk -v v="$(value conv_ms_alone)" 'BEGIN { exit !(v > 0) }' || fail "bench-decode: no conv times"
expect_error "multiples of 2" -- run_np "$NP" bench-decode --backend cpu --model ae-tiny --width 25 --height 16
[ "$NP" = 1 ] || expect_error "cannot be split over $NP ranks" -- \
  run_np "$NP" bench-decode --backend cpu --model ae-tiny --width 24 --height 2
echo "decode at np $NP: ok"
