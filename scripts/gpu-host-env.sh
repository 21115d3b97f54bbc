# Sourced by the GPU-host scripts (gpu-host-check.sh, gpu-bench.sh): unpacks the carried
# .gpu-host packages (see the BRIEF) and sets `flags` (their CMake flags, -DCMAKE_CUDA_ARCHITECTURES
# included) and `extra` (the carried OpenBLAS where the host has none; dpkg -x makes no
# alternatives links). Returns non-zero when the packages cannot be unpacked.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# SentencePiece (the T5 tokenizer) is required since 2026-12-07; shared/gpu-host/bundle.sh predates
# it, so the bundle may lack it: add it with `(cd .gpu-host && apt-get download libsentencepiece-dev
# libsentencepiece0)` on the development machine before carrying .gpu-host.
if ! ls .gpu-host/libsentencepiece-dev_*.deb >/dev/null 2>&1 && ! ls /usr/include/sentencepiece_processor.h >/dev/null 2>&1; then
  echo "gpu-host-env: .gpu-host lacks libsentencepiece-dev and libsentencepiece0 (apt-get download them into it)" >&2
  return 1
fi
flags=$(bash .gpu-host/unpack.sh) || return 1
source /opt/fresco-deps/env.sh
deps=/opt/fresco-deps/usr/lib/x86_64-linux-gnu
extra=()
if ! ls /usr/lib/x86_64-linux-gnu/libopenblas.so >/dev/null 2>&1; then
  extra+=(-DBLAS_LIBRARIES="$deps/openblas-pthread/libopenblas.so")
  export LD_LIBRARY_PATH="$deps/openblas-pthread:$deps:$LD_LIBRARY_PATH"
fi
