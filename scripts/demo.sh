#!/usr/bin/env bash
# The demo behind `make demo`: random flux-small transformer and ae-small decoder weights,
# 4 random prompts, and a data-parallel `fresco generate` on several MPI ranks. Writes
# DIR/images/img_{i}.png and img_{i}.h5 (latent, picture, provenance).
#   scripts/demo.sh FRESCO_BINARY OUT_DIR RANKS
set -euo pipefail
fresco=${1:?fresco binary}
dir=${2:?output directory}
ranks=${3:-4}
mkdir -p "$dir"
[ -e "$dir/weights.h5" ] || "$fresco" init-weights --model flux-small --seed 1 "$dir/weights.h5"
[ -e "$dir/vae.h5" ] || "$fresco" init-weights --model ae-small --seed 2 "$dir/vae.h5"
[ -e "$dir/prompts.h5" ] || "$fresco" make-prompts --model flux-small --count 4 --txt-len 64 \
  --width 256 --height 256 --steps 8 --seed 100 "$dir/prompts.h5"
# --oversubscribe: the demo must also run on a 2-core laptop or CI machine.
start=$(date +%s)
mpiexec -n "$ranks" --oversubscribe "$fresco" generate \
  --weights "$dir/weights.h5" --vae "$dir/vae.h5" --prompts "$dir/prompts.h5" --out "$dir/images"
echo "demo: $(ls "$dir"/images/*.png | wc -l) pictures in $dir/images after $(( $(date +%s) - start )) s"
