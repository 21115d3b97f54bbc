#!/usr/bin/env bash
# Installs the Debian 12 packages Fresco builds against, skipping those already present.
# Used by `make demo` / `make test`; cluster users load modules instead (docs/cluster.md).
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  openmpi-bin libopenmpi-dev          # MPI
  libhdf5-dev                         # weights, prompts, outputs
  libboost-program-options-dev        # CLI
  libopenblas-dev                     # CPU matrix products
  nlohmann-json3-dev                  # safetensors header
  librandom123-dev                    # counter-based RNG for the initial noise
  libpng-dev                          # image output
  libsentencepiece-dev                # T5's tokenizer (src/text/t5_tokenizer.cpp; required)
  libgtest-dev                        # unit tests
  libucx-dev                          # UCX one-sided transport (--transport ucx; optional: -DFRESCO_UCX=OFF)
  gnuplot-nox                         # `fresco sweep` plots (PNG through its pngcairo terminal)
  python3-minimal                     # the include-layer check (scripts/check-include-layers.py)
)
# Slurm (slurmctld, slurmd, slurm-client, munge) for the slurm-labelled tests is installed by
# scripts/slurm.sh start, which `make test` runs.
# UCX is optional: without it (or with -DFRESCO_UCX=OFF) the build leaves out --transport ucx.
# NCCL (FRESCO_NCCL, found automatically) comes with the GPU machines' CUDA installation, not apt.

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
