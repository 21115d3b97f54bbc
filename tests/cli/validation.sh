# All validation before the first step, bounds, and the smaller defects of issue 18: every case
# gets one message naming the file, tensor, dataset or option, a non-zero status and no output.
source "$(dirname "$0")/common.sh"
make_tiny_fixtures 2
W=weights.h5
P=prompts.h5
gen() { "$FRESCO" generate --weights "$1" --prompts "${2:-$P}" --out out "${@:3}"; }
gen2() { run_np 2 generate --weights "$1" --prompts "${2:-$P}" --out out "${@:3}"; }
no_output() { [ ! -e out ] || [ -z "$(ls -A out)" ] || { ls -la out; fail "partial output in out/"; }; }

# Non-finite weights: the tensor is named, nothing is computed.
cp $W nan_w.h5; "$H5_TOOL" poison nan_w.h5 /double_blocks/1/img_attn/qkv/weight
expect_error "nan_w.h5: non-finite values (NaN or Inf) in 1 tensor(s):" -- gen nan_w.h5; no_output
grep -q "double_blocks.1.img_attn.qkv.weight (1 of" err.log || fail "the tensor is not named"
# Non-finite and wrongly typed prompt entries: found at set-up at np 2 (one report, the entry named).
cp $P nan_p.h5; "$H5_TOOL" poison nan_p.h5 /prompts/1/txt
expect_error "nan_p.h5:/prompts/1/txt has 1 non-finite value(s)" -- gen2 $W nan_p.h5; no_output
cp $P type_p.h5; "$H5_TOOL" retype type_p.h5 /prompts/1/y
expect_error "type_p.h5:/prompts/1/y is stored as int32, expected floating point" -- gen2 $W type_p.h5; no_output
# Non-finite options and attributes.
expect_error "option --guidance must be a finite number" -- gen $W $P --guidance nan; no_output
cp $P g_p.h5; "$H5_TOOL" setfloat g_p.h5 /prompts/0 guidance nan
expect_error "g_p.h5 image 0: guidance is not a finite number" -- gen $W g_p.h5; no_output

# Bounds on sizes, steps, threads; the memory estimate names the option.
expect_error "option '--steps' is invalid" -- gen $W $P --steps 1e11; no_output
expect_error "option --steps must be at most 10000 (got 100000000000)" -- gen $W $P --steps 100000000000; no_output
expect_error "width and height must be at most 16384 pixels (got 1048576x48) (options --width/--height)" -- \
  gen $W $P --width 1048576; no_output
cp $P big_p.h5; "$H5_TOOL" setint big_p.h5 / width 1099511627776
expect_error "got 1099511627776x48) (width/height attributes of the prompt file)" -- gen $W big_p.h5; no_output
expect_error "option --threads 100000 is more than" -- gen $W $P --threads 100000; no_output
expect_error "option --threads must not be negative (got -4" -- gen $W $P --threads -4; no_output
# 8 MiB: flux-tiny's 2 MiB of weights fit, the activations of 1024x1024 (30 MiB) do not (with 1 MiB
# the weights alone would not fit, whose advice is bf16, not the size: cli_memory_check).
expect_error "needs about .* per rank .*lower --width/--height" -- \
  env FRESCO_MEMORY_PER_RANK=8 "$FRESCO" generate --weights $W --prompts $P --out out --width 1024 --height 1024
no_output

# compare: a NaN in the test file is reported, never a perfect match.
"$FRESCO" generate --weights $W --prompts $P --out good >/dev/null
cp good/img_0.h5 nan_img.h5; "$H5_TOOL" poison nan_img.h5 /latent
expect_error "nan_img.h5:/latent has 1 non-finite value(s)" -- "$FRESCO" compare nan_img.h5 good/img_0.h5
rc=0; "$FRESCO" compare nan_img.h5 good/img_0.h5 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 5 ] || fail "compare of a NaN file ended with status $rc, expected 5"

# The smaller items: big-endian tensor, unknown model attribute, stray dataset under /prompts,
# a FIFO as --weights, a directory as --config, make-prompts --width 100, forward t outside [0, 1].
cp $W be.h5; "$H5_TOOL" bigendian be.h5 /img_in/bias
expect_error "img_in.bias is stored as big-endian float32 (Fresco reads little-endian only)" -- gen be.h5; no_output
cp $W model.h5; "$H5_TOOL" setstr model.h5 / model flux-huge
expect_error "model.h5 has model attribute 'flux-huge', which is not a transformer preset" -- gen model.h5; no_output
cp $P stray.h5; "$H5_TOOL" add stray.h5 /prompts/extra
expect_error "stray.h5: /prompts/extra is not a prompt" -- gen $W stray.h5; no_output
mkfifo fifo.h5
expect_error "fifo.h5 is not a regular file" -- timeout 20 "$FRESCO" generate --weights fifo.h5 --prompts $P --out out
no_output
# An option name holding "%canonical_option%" once hung Boost's error message (found by fuzzing).
printf 'ulysse%%canonical_option%%de = 4\n' > pct.ini
expect_error "config file pct.ini line 1: unrecognised option 'ulysse%canonical_option%de'" -- \
  timeout 20 "$FRESCO" generate --weights $W --prompts $P --out out --config pct.ini
no_output
mkdir confdir
expect_error "config file confdir is a directory" -- gen $W $P --config confdir; no_output
expect_error "make-prompts: width and height must be positive multiples of 16 (got 100x256)" -- \
  "$FRESCO" make-prompts --model flux-tiny --width 100 p100.h5
[ ! -e p100.h5 ] || fail "make-prompts wrote a file generate would refuse"
cp "$GOLDEN_DIR/flux_tiny_inputs.h5" t.h5; "$H5_TOOL" setfloat t.h5 / t 1.5
expect_error "t.h5: attribute t must be a timestep in \[0, 1\] (got 1.5" -- \
  "$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" --inputs t.h5 --out v.h5
[ ! -e v.h5 ] || fail "forward left an output"
echo "validation before the first step, bounds and small defects: ok"
