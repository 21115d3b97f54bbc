# `fresco convert` given something other than a safetensors checkpoint says what it was given
# (a folder, a sharded checkpoint's index, an HDF5 file) instead of a misleading "truncated?"
# or "No such device"; status 2 and no output each time. (Checkpoints that are safetensors but
# match no preset, or another preset, are the Safetensors.* cases of test_unit.)
source "$(dirname "$0")/common.sh"
no_output() { [ ! -e out.h5 ] || fail "convert left an output"; }

# A diffusers folder (transformer/ with sharded files and their index).
mkdir transformer
: > transformer/diffusion_pytorch_model-00001-of-00002.safetensors
: > transformer/diffusion_pytorch_model-00002-of-00002.safetensors
echo '{"metadata": {"total_size": 1}, "weight_map": {}}' \
  > transformer/diffusion_pytorch_model.safetensors.index.json
expect_error "transformer is a folder: the diffusers layout" -- "$FRESCO" convert transformer out.h5
grep -q "flux1-dev.safetensors" err.log || fail "the folder's message does not name the file to convert"
[ "$LAST_RC" -eq 2 ] || fail "a folder is an input error (status 2), got $LAST_RC"
no_output
# A folder of other safetensors files: its files are named.
mkdir ckpts; : > ckpts/a.safetensors
expect_error "ckpts is a folder; pass one of its .safetensors files (ckpts/a.safetensors)" -- \
  "$FRESCO" convert ckpts out.h5
no_output
# The index of a sharded checkpoint.
expect_error "is the index of a sharded checkpoint (JSON), not a safetensors file" -- \
  "$FRESCO" convert transformer/diffusion_pytorch_model.safetensors.index.json out.h5
[ "$LAST_RC" -eq 2 ] || fail "an index is an input error (status 2), got $LAST_RC"
no_output
# An HDF5 file, e.g. one already converted.
"$FRESCO" init-weights --model flux-tiny w.h5 >/dev/null
expect_error "w.h5 is an HDF5 file, not a safetensors checkpoint" -- "$FRESCO" convert w.h5 out.h5
no_output
if grep -q "truncated" err.log; then fail "an HDF5 file is not a truncated checkpoint"; fi
# A file that is none of these, cut short: still the truncated-file message.
printf '\xff\xff\x00\x00\x00\x00\x00\x00{}' > cut.safetensors
expect_error "header length exceeds the file (truncated?)" -- "$FRESCO" convert cut.safetensors out.h5
no_output
echo "convert: ok"
