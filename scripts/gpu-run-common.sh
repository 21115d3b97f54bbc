# Sourced by the GPU-host measurement scripts (gpu-generate-vs-bench.sh, gpu-step-cache.sh):
# their arguments [SIZE] [STEPS], the output folder ($OUT, else ./gpu-host-logs), the binary
# ($FRESCO, else build-gpu/fresco), a temporary folder and a prompt file of one FLUX.1-dev
# prompt (512 text tokens) at SIZE² and STEPS steps in it.
set -uo pipefail
out=${OUT:-gpu-host-logs}
mkdir -p "$out"
size=${1:-1024}
steps=${2:-12}
B=${FRESCO:-$PWD/build-gpu/fresco}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$B" make-prompts --model flux-dev --count 1 --txt-len 512 --width "$size" --height "$size" --steps "$steps" \
  "$tmp/p.h5" >/dev/null || exit 1
# The JSON object of `fresco bench --json` (after the effective configuration's lines), for python.
BENCH_JSON_PY='
import json
def bench(path):
    text = open(path).read()
    return json.loads(text[text.index("\n{") + 1:] if not text.startswith("{") else text)
'
