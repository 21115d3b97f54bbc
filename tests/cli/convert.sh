# `fresco convert` given something other than a safetensors checkpoint says what it was given
# (a pipeline's folder, a folder of several checkpoints, a broken index, an HDF5 file) instead
# of a misleading "truncated?" or "No such device"; status 2 and no output each time. (Sharded
# and diffusers checkpoints that convert: convert_layouts.sh.) (Checkpoints that are safetensors but
# match no preset, or another preset, are the Safetensors.* cases of test_unit.)
source "$(dirname "$0")/common.sh"
no_output() { [ ! -e out.h5 ] || fail "convert left an output"; }

# A diffusers pipeline's root folder: its transformer/ and vae/ are named.
mkdir -p pipeline/transformer pipeline/vae
expect_error "pipeline is a diffusers pipeline folder: convert its transformer/ folder" -- \
  "$FRESCO" convert pipeline out.h5
[ "$LAST_RC" -eq 2 ] || fail "a folder is an input error (status 2), got $LAST_RC"
no_output
# A folder of several checkpoints and no index: its files are named.
mkdir ckpts; : > ckpts/a.safetensors; : > ckpts/b.safetensors
expect_error "ckpts is a folder of several checkpoints and no index; pass one of its .safetensors files (ckpts/a.safetensors, ckpts/b.safetensors)" -- \
  "$FRESCO" convert ckpts out.h5
no_output
# An index that is not one, and a file holding an index under another name.
echo '{"metadata": {"total_size": 1}}' > bad.safetensors.index.json
expect_error 'bad.safetensors.index.json has no "weight_map" object' -- "$FRESCO" convert bad.safetensors.index.json out.h5
cp bad.safetensors.index.json index.safetensors
echo '{"weight_map": {}}' > index.safetensors
expect_error "is the index of a sharded checkpoint (JSON), not a safetensors file" -- \
  "$FRESCO" convert index.safetensors out.h5
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
