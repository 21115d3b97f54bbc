# `fresco info` on a node (or a build) without a usable GPU says so in one plain line, and not
# as a CUDA error that reads like a broken install. CUDA_VISIBLE_DEVICES= hides any GPU, so the
# case runs on GPU hosts too.
source "$(dirname "$0")/common.sh"
CUDA_VISIBLE_DEVICES= "$FRESCO" info > info.txt
cat info.txt
grep -q "^GPUs: none" info.txt || fail "no plain 'GPUs: none ...' line"
grep "^GPUs: none" info.txt | grep -q "run on the CPU" || fail "the GPU line does not say where commands run"
if grep -qi "insufficient\|error" info.txt; then fail "a missing GPU is reported as an error"; fi
grep -q "^backend cpu:" info.txt || fail "the cpu backend is not listed"
echo "info: ok"
