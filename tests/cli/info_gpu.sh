# GPU visibility: where a GPU is present, `fresco info` lists it; elsewhere the test is
# skipped (exit 77) with the reason.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
cat info.txt
if grep -q "CUDA: not built" info.txt; then echo "SKIP: this build has no CUDA backend"; exit 77; fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIP: no GPU on this machine ($(grep '^GPUs: none' info.txt))"; exit 77
fi
grep -q "GPU 0: " info.txt || fail "nvidia-smi sees a GPU but fresco info lists none"
