# `fresco forward` on flux-tiny matches the independent PyTorch reference (fp32, 1e-5).
source "$(dirname "$0")/common.sh"
"$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" \
  --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out velocity.h5
"$H5_TOOL" compare velocity.h5 "$GOLDEN_DIR/flux_tiny_velocity.h5" /velocity 1e-5
# Twice: the same bits.
"$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" \
  --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out again.h5 >/dev/null
"$H5_TOOL" compare velocity.h5 again.h5 /velocity 0
