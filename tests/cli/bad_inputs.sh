# Every bad input gets one clear message naming the file, tensor or option, a non-zero exit,
# and no partial output.
source "$(dirname "$0")/common.sh"
make_tiny_fixtures 2
W=weights.h5
P=prompts.h5
gen() { "$FRESCO" generate --weights "$1" --prompts "${2:-$P}" --out out "${@:3}"; }
no_output() { [ ! -e out ] || [ -z "$(ls -A out)" ] || { ls -la out; fail "partial output in out/"; }; }

# Missing file, not HDF5, truncated HDF5.
expect_error "file not found: nope.h5" -- gen nope.h5; no_output
echo "plain text" > text.h5
expect_error "text.h5 is not an HDF5 file" -- gen text.h5; no_output
head -c 20000 $W > truncated.h5
expect_error "truncated.h5" -- gen truncated.h5; no_output

# Missing tensor, wrong shape, wrong dtype: the tensor is named.
cp $W missing.h5; "$H5_TOOL" delete missing.h5 /double_blocks/1/txt_mlp/0/bias
expect_error "missing tensor double_blocks.1.txt_mlp.0.bias" -- gen missing.h5; no_output
cp $W shape.h5; "$H5_TOOL" reshape shape.h5 /img_in/weight
expect_error "img_in.weight has shape \[3, 3\]" -- gen shape.h5; no_output
cp $W dtype.h5; "$H5_TOOL" retype dtype.h5 /img_in/bias
expect_error "img_in.bias is stored as int32" -- gen dtype.h5; no_output
# Several problems at once: all listed in the one report.
cp $W several.h5; "$H5_TOOL" delete several.h5 /txt_in/bias; "$H5_TOOL" retype several.h5 /img_in/bias
expect_error "2 problems" -- gen several.h5
grep -q "missing tensor txt_in.bias" err.log && grep -q "img_in.bias is stored as int32" err.log \
  || fail "not every problem was listed"

# Weights of another preset.
"$FRESCO" init-weights --model flux-small small.h5 >/dev/null
expect_error "holds weights of preset flux-small, but the run uses flux-tiny" -- \
  gen small.h5 $P --model flux-tiny; no_output
# Prompts whose widths do not match the model.
"$FRESCO" make-prompts --model flux-small --count 1 --txt-len 3 small_prompts.h5 >/dev/null
expect_error "small_prompts.h5:/prompts/0/txt has shape \[3, 256\], but flux-tiny expects" -- \
  gen $W small_prompts.h5; no_output
# Width/height not a multiple of 16; zero steps.
expect_error "prompts.h5 image 0: width and height must be positive multiples of 16 (got 100x48)" -- gen $W $P --width 100; no_output
expect_error "option --steps must be positive" -- gen $W $P --steps 0; no_output
# Step cache knobs that make no sense (docs/step-cache.md), refused before any work.
expect_error "option --cache must be none, fbcache, dbcache or teacache (got 'tea')" -- gen $W $P --cache tea; no_output
expect_error "option --cache-threshold must be a non-negative number" -- gen $W $P --cache fbcache --cache-threshold -0.1; no_output
expect_error "option --cache-first-blocks must be between 1 and the model's 4 blocks (got 9)" -- \
  gen $W $P --cache dbcache --cache-first-blocks 9; no_output
expect_error "must leave at least one of the model's 4 blocks to cache" -- \
  gen $W $P --cache dbcache --cache-first-blocks 2 --cache-last-blocks 2; no_output
expect_error "option --cache-max-consecutive must be at least 1 (got 0)" -- \
  gen $W $P --cache fbcache --cache-max-consecutive 0; no_output
expect_error "option --cache-first-blocks applies to --cache dbcache" -- gen $W $P --cache fbcache --cache-first-blocks 2; no_output
expect_error "option --cache-threshold needs a step cache" -- gen $W $P --cache-threshold 0.1; no_output
expect_error "option --cache-pattern must start with 1" -- gen $W $P --cache teacache --cache-pattern 0110; no_output
expect_error "option --cache-pattern must be a string of 1 (computed) and 0 (cached)" -- \
  gen $W $P --cache teacache --cache-pattern 1x; no_output
expect_error "option --cache-coefficients must be comma-separated numbers (got 'a')" -- \
  gen $W $P --cache teacache --cache-coefficients 1,a; no_output
# FP8 attention quantizes bf16 activations: refused with f32 (the CPU's default), before any work.
expect_error "option --fp8-attention goes with --dtype bf16 or fp8" -- gen $W $P --fp8-attention --dtype f32; no_output
expect_error "option --fp8-attention goes with --dtype bf16 or fp8" -- gen $W $P --fp8-attention; no_output
# Output directory that cannot be written (a path under a regular file).
echo x > afile
expect_error "output directory afile/sub cannot be created" -- \
  "$FRESCO" generate --weights $W --prompts $P --out afile/sub
# forward: inputs with a missing dataset; the output file is not created.
cp "$GOLDEN_DIR/flux_tiny_inputs.h5" inputs.h5; "$H5_TOOL" delete inputs.h5 /y
expect_error "inputs.h5 has no dataset /y" -- \
  "$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" --inputs inputs.h5 --out v.h5
[ ! -e v.h5 ] || fail "forward left an output"
# convert: not a safetensors file; unknown option; unknown command; unknown preset.
expect_error "afile is not a safetensors file" -- "$FRESCO" convert afile conv.h5
[ ! -e conv.h5 ] || fail "convert left an output"
expect_error "unrecognised option '--stepz'" -- gen $W $P --stepz 3
expect_error "unknown command 'generat'" -- "$FRESCO" generat
expect_error "unknown model preset 'flux-huge'" -- "$FRESCO" init-weights --model flux-huge x.h5
[ ! -e x.h5 ] || fail "init-weights left an output"
echo "all bad inputs rejected cleanly"
