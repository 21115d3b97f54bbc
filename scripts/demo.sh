#!/usr/bin/env bash
# The demo behind `make demo`: from a text file of prompts to PNGs, with random weights (so the
# pictures are noise): the tiny T5 and CLIP encoders (t5-tiny, clip-tiny) with the test
# tokenizers, a flux-tiny transformer (the tiny encoders' widths are its) and an ae-small decoder;
# `fresco generate` encodes DIR/prompts.txt on rank 0 and denoises the 4 images data parallel on
# several MPI ranks. Writes DIR/images/img_{i}.png and img_{i}.h5 (latent, picture, provenance
# with the prompt's text) and DIR/images/prompts.h5 (the encoded prompts).
#   scripts/demo.sh FRESCO_BINARY OUT_DIR RANKS
set -euo pipefail
fresco=${1:?fresco binary}
dir=${2:?output directory}
ranks=${3:-4}
tokenizers=$(cd "$(dirname "$0")/../tests/data/tokenizers" && pwd)
mkdir -p "$dir"
[ -e "$dir/flux-tiny.h5" ] || "$fresco" init-weights --model flux-tiny --seed 1 "$dir/flux-tiny.h5"
[ -e "$dir/vae.h5" ] || "$fresco" init-weights --model ae-small --seed 2 "$dir/vae.h5"
[ -e "$dir/t5.h5" ] || "$fresco" init-weights --model t5-tiny --seed 3 "$dir/t5.h5"
[ -e "$dir/clip.h5" ] || "$fresco" init-weights --model clip-tiny --seed 4 "$dir/clip.h5"
[ -e "$dir/prompts.txt" ] || printf '%s\n' "a red fox in the snow" "a lighthouse at dusk, oil painting" \
  "a bowl of ramen, top view" "Un café à Paris sous la pluie" > "$dir/prompts.txt"
# --oversubscribe: the demo must also run on a 2-core laptop or CI machine.
start=$(date +%s)
mpiexec -n "$ranks" --oversubscribe "$fresco" generate \
  --weights "$dir/flux-tiny.h5" --vae "$dir/vae.h5" --out "$dir/images" \
  --prompts "$dir/prompts.txt" --t5 "$dir/t5.h5" --clip "$dir/clip.h5" --tokenizers "$tokenizers" --t5-tokens 64 \
  --width 256 --height 256 --steps 8 --seed 100
echo "demo: $(ls "$dir"/images/*.png | wc -l) pictures in $dir/images after $(( $(date +%s) - start )) s"
