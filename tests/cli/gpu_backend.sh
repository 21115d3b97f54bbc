# The CUDA backend where a GPU is present (skipped with exit 77 elsewhere): every op against the
# CPU reference (the op test program), and the golden forwards (FLUX; Qwen-Image: qwen_forward.sh) on the GPU in f32 (1e-5, as on
# the CPU) and in bf16 (within twice the error of a PyTorch bf16 eager reference, as the
# bf16 CPU mode), and the golden decoder in bf16.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
if ! grep -q "^backend cuda" info.txt; then
  echo "SKIP: no CUDA backend here ($(grep -E 'CUDA' info.txt | head -1))"; exit 77
fi
"$TEST_BACKEND_OPS" --backend cuda | tail -3
# cuDNN's convolutions in bands of rows (as large images run them): a tiny workspace limit makes
# the op test's small convolutions run in 3 to 5 bands.
FRESCO_CUDNN_CONV_WORKSPACE_MB=0.01 "$TEST_BACKEND_OPS" --backend cuda --op conv2d | tail -1
g=$GOLDEN_DIR
"$FRESCO" forward --backend cuda --dtype f32 --weights "$g/flux_tiny_weights.h5" --inputs "$g/flux_tiny_inputs.h5" \
  --out f32.h5 >/dev/null
"$H5_TOOL" compare f32.h5 "$g/flux_tiny_velocity.h5" /velocity 1e-5
"$FRESCO" forward --backend cuda --dtype bf16 --weights "$g/flux_tiny_weights.h5" \
  --inputs "$g/flux_tiny_inputs.h5" --out bf16.h5 >/dev/null
ours=$("$FRESCO" compare bf16.h5 "$g/flux_tiny_velocity.h5" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}')
naive=$("$FRESCO" compare "$g/flux_tiny_velocity_bf16.h5" "$g/flux_tiny_velocity.h5" | grep -o "relative L2 [0-9.e+-]*" | awk '{print $3}')
echo "bf16 forward on the GPU: relative L2 $ours (PyTorch bf16 eager: $naive)"
awk -v a="$ours" -v b="$naive" 'BEGIN { exit !(a < 2 * b && a > 1e-4) }' \
  || fail "bf16 GPU forward error $ours is not within twice PyTorch's $naive"
# Qwen-Image's golden forward on the GPU: f32 within 1e-5, bf16 within 3e-2 (qwen_forward.sh).
QWEN_BACKEND=cuda bash "$(dirname "$0")/qwen_forward.sh" 1 || fail "qwen-tiny forward on the GPU"
# --dtype fp8 on the GPU (cuBLASLt's e4m3 products): the CPU's rule (fp8_forward.sh).
FP8_BACKEND=cuda bash "$(dirname "$0")/fp8_forward.sh" || fail "fp8 forward on the GPU"
FP8_BACKEND=cuda bash "$(dirname "$0")/fp8_generate.sh" || fail "fp8 generate on the GPU"
FP8_BACKEND=cuda bash "$(dirname "$0")/fp8_weights.sh" || fail "fp8 weights file on the GPU"
# --lora: weights merged on the host, then uploaded (lora.sh's forward checks on the GPU).
LORA_BACKEND=cuda bash "$(dirname "$0")/lora.sh" || fail "lora on the GPU"

# The decoder on the GPU against the CPU (f32), and in bf16 against the PyTorch reference.
cp "$g/ae_tiny_decode.h5" latent.h5  # holds /latent
"$FRESCO" decode --backend cpu --vae "$g/ae_tiny_weights.h5" latent.h5 --out cpu >/dev/null
"$FRESCO" decode --backend cuda --dtype f32 --vae "$g/ae_tiny_weights.h5" latent.h5 --out gpu >/dev/null
"$H5_TOOL" compare gpu.decoded.h5 cpu.decoded.h5 /image 1e-5
"$FRESCO" decode --backend cuda --dtype bf16 --vae "$g/ae_tiny_weights.h5" latent.h5 --out gpu16 >/dev/null
"$H5_TOOL" compare gpu16.decoded.h5 cpu.decoded.h5 /image 3e-2
# FLUX.1's decoder shape (flux-ae, random weights) in bf16: cuDNN's convolutions and the mid-block
# attention with head dim 512 (blocked cuBLASLt path) against the CPU in f32; then the 10 latent
# rows as bands of 5 on two ranks sharing the GPU (haloed convolutions, Ring attention over
# head dim 512 with the log-sum-exp merge), which equal one rank's within bf16 rounding.
"$FRESCO" init-weights --model flux-ae --seed 3 flux_ae.h5 >/dev/null
"$FRESCO" decode --backend cpu --vae flux_ae.h5 latent.h5 --out ae_cpu >/dev/null
"$FRESCO" decode --backend cuda --dtype bf16 --vae flux_ae.h5 latent.h5 --out ae_gpu16 >/dev/null
"$H5_TOOL" compare ae_gpu16.decoded.h5 ae_cpu.decoded.h5 /image 3e-2
run_np 2 decode --backend cuda --dtype bf16 --transport ipc --vae flux_ae.h5 latent.h5 --out ae_gpu16_np2 >/dev/null
"$H5_TOOL" compare ae_gpu16_np2.decoded.h5 ae_cpu.decoded.h5 /image 3e-2

# A batch on the GPU, two ranks sharing it (data parallel), against the CPU: the same images
# within f32 rounding of different summation orders over the denoising steps.
make_tiny_fixtures 4
"$FRESCO" init-weights --model ae-tiny --seed 2 ae.h5 >/dev/null
run_np 1 generate --backend cpu --weights weights.h5 --prompts prompts.h5 --out cpu_out --vae ae.h5 >/dev/null
run_np 2 generate --backend cuda --dtype f32 --weights weights.h5 --prompts prompts.h5 --out gpu_out --vae ae.h5 >/dev/null
for i in 0 1 2 3; do
  "$H5_TOOL" compare "gpu_out/img_$i.h5" "cpu_out/img_$i.h5" /latent 1e-4
  [ -s "gpu_out/img_$i.png" ] || fail "gpu_out/img_$i.png missing"
done
run_np 2 generate --backend cuda --dtype bf16 --weights weights.h5 --prompts prompts.h5 --out gpu16 >/dev/null
"$H5_TOOL" compare gpu16/img_0.h5 cpu_out/img_0.h5 /latent 5e-2
# flux-small (9 M parameters) on the GPU against the CPU in the same dtype.
"$FRESCO" init-weights --model flux-small --seed 4 small.h5 >/dev/null
"$FRESCO" make-prompts --model flux-small --count 1 --txt-len 16 --width 128 --height 128 --steps 4 \
  small_prompts.h5 >/dev/null
for dt in f32 bf16; do
  "$FRESCO" generate --backend cpu --dtype $dt --weights small.h5 --prompts small_prompts.h5 --out small_cpu_$dt >/dev/null
  "$FRESCO" generate --backend cuda --dtype $dt --weights small.h5 --prompts small_prompts.h5 --out small_gpu_$dt >/dev/null
done
"$H5_TOOL" compare small_gpu_f32/img_0.h5 small_cpu_f32/img_0.h5 /latent 1e-4
"$H5_TOOL" compare small_gpu_bf16/img_0.h5 small_cpu_bf16/img_0.h5 /latent 2e-2
echo "ok: CUDA backend ops, golden forward (f32, bf16), decoder, generate"
