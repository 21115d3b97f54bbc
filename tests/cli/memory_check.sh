# The one memory check of every command that builds a denoiser (issue 25, defect 4): bench,
# forward and generate refuse at once, before any weights are made, with exit status 2, one
# report, and advice that fits the case: bf16 weights or a smaller --model when the weights alone
# do not fit (never more ranks: every rank holds all of them); the size, more ranks or bf16 when
# the activations do not. The GPU budget's arithmetic is tests/test_memory_check.cpp.
source "$(dirname "$0")/common.sh"
make_tiny_fixtures 1

# A command that must be refused at once: exit status 2 within 5 s. It runs under a 10 s timeout
# in 8 GiB of address space, so that a binary without the check (which ran `fresco bench` for 6
# minutes until the kernel killed it at 24 GB) fails here instead of exhausting the node.
refused() {
  local pattern=$1; shift; [ "$1" = "--" ] && shift
  local start=$(date +%s%N)
  expect_error "$pattern" -- bash -c 'ulimit -v 8388608; exec timeout 10 "$@"' refused "$@"
  local ms=$((($(date +%s%N) - start) / 1000000))
  [ "$LAST_RC" -eq 2 ] || fail "exit status $LAST_RC, expected 2 (InputError): $*"
  [ "$ms" -lt 5000 ] || fail "refused after $ms ms, not at once: $*"
}
never() { ! grep -q -- "$1" err.log || { cat err.log; fail "the advice names '$1'"; }; }

# `fresco bench` with no arguments: FLUX.1-dev at 1024x1024 in f32 (the CPU default) needs 44 GiB
# of weights on every rank. On the trial's 23.5 GiB node (FRESCO_MEMORY_PER_RANK stands for it),
# and on this node without the override when it is as small.
refused "fresco bench: flux-dev at 1024x1024 with 512 text tokens needs about 4[0-9.]* GiB per rank (weights 44.3 GiB in f32.*the weights alone do not fit.*use --dtype bf16 (weights 22.2 GiB.*a smaller --model (flux-small" -- \
  env FRESCO_MEMORY_PER_RANK=24064 "$FRESCO" bench
never "--ulysses"; never "--width"
if awk '/^MemTotal:/ { exit !($2 < 40 * 1024 * 1024) }' /proc/meminfo; then
  refused "this node has (its memory or cgroup limit); the weights alone do not fit" -- "$FRESCO" bench
fi
# bf16 weights that still do not fit: a smaller --model, not bf16 again, not more ranks.
refused "weights 22.2 GiB in bf16.*the weights alone do not fit.*--model (flux-small" -- \
  env FRESCO_MEMORY_PER_RANK=16384 "$FRESCO" bench --model flux-dev --dtype bf16
never "--dtype"; never "--ulysses"
# Activations that do not fit: bench's own --width/--height, more ranks, bf16.
refused "flux-tiny at 4096x4096 with 8 text tokens needs about .* MiB per rank.*lower --width/--height (or --txt-len), spread the image over more ranks (--ulysses/--ring) or use --dtype bf16" -- \
  env FRESCO_MEMORY_PER_RANK=256 "$FRESCO" bench --model flux-tiny --width 4096 --height 4096 --txt-len 8
never "weights alone"
# On two ranks: one report for the job.
refused "the weights alone do not fit" -- env FRESCO_MEMORY_PER_RANK=16384 "$MPIEXEC" -n 2 --oversubscribe "$FRESCO" \
  bench --model flux-dev --dtype bf16

# generate with random FLUX.1-dev weights (the trial's case): the weights, not the image size.
"$FRESCO" make-prompts --model flux-dev --count 1 --txt-len 5 --width 64 --height 48 --steps 2 dev_prompts.h5 >/dev/null
refused "image 0 (64x48) needs about .* the weights alone do not fit.*use --dtype bf16.*--model (flux-small" -- \
  env FRESCO_MEMORY_PER_RANK=24064 "$FRESCO" generate --weights random:0 --model flux-dev --prompts dev_prompts.h5 --out out
never "width/height"; never "--ulysses"
[ ! -e out ] || [ -z "$(ls -A out)" ] || fail "generate left output"
# A weights file fixes the model: no --model advice.
refused "the weights alone do not fit" -- \
  env FRESCO_MEMORY_PER_RANK=1 "$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out out
never "--model"

# forward: the inputs file's image, refused before the weights are read.
refused "flux_tiny_inputs.h5's image (grid .*) needs about .* the weights alone do not fit" -- \
  env FRESCO_MEMORY_PER_RANK=1 "$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" \
  --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" --out v.h5
[ ! -e v.h5 ] || fail "forward wrote its output"
# ... and run where it fits.
"$FRESCO" forward --weights "$GOLDEN_DIR/flux_tiny_weights.h5" --inputs "$GOLDEN_DIR/flux_tiny_inputs.h5" \
  --out v.h5 >/dev/null
echo "memory check of bench, generate and forward: ok"
