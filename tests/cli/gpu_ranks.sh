# GPU ranks (skipped with exit 77 where no GPU is present): every parallel method on NP GPU
# ranks against the single-rank GPU result on the same inputs, through every transport this
# host allows: CUDA IPC and host-staged MPI (ranks may share one GPU), NCCL where there is a
# GPU per rank, and host-staged UCX puts where UCX is built. Then a hung rank (SIGSTOP) ends an
# IPC job through the watchdog, with a GPU per rank a killed one ends an NCCL job, and where UCX
# is built a hung rank ends a host-staged UCX job through the host wait's deadline, each within
# 30 s.
source "$(dirname "$0")/common.sh"
NP=${1:-2}
"$FRESCO" info > info.txt
if ! grep -q "^backend cuda" info.txt; then
  echo "SKIP: no CUDA backend here ($(grep -E 'CUDA' info.txt | head -1))"; exit 77
fi
gpus=$(grep -c "^  GPU [0-9]" info.txt || true)
if [ "$NP" -gt 4 ] && [ "$gpus" -lt "$NP" ]; then
  echo "SKIP: np $NP runs with a GPU per rank only ($gpus GPU(s) here)"; exit 77
fi
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" init-weights --model ae-tiny --seed 2 ae.h5 >/dev/null
# 80x80: 5 token rows, so patches and sequence shards are uneven (144x144, 9 rows, at np 8).
size=80; [ "$NP" -le 5 ] || size=144
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width $size --height $size --steps 6 \
  prompts.h5 >/dev/null
# f32 unless DTYPE says otherwise (the GPU's default is bf16): the exact comparisons need f32.
gen() { local np=$1; shift; run_np "$np" generate --backend cuda --dtype "${DTYPE:-f32}" --weights weights.h5 --prompts prompts.h5 "$@"; }
gen 1 --out exact --vae ae.h5 >/dev/null
DTYPE=bf16 gen 1 --out exact16 >/dev/null

transports="ipc mpi"
[ "$gpus" -ge "$NP" ] && transports="$transports nccl"
grep -q "^UCX: built" info.txt && transports="$transports ucx"
methods=("ulysses:--ulysses $NP --ring 1" "ring:--ulysses 1 --ring $NP"
         "patch:--parallel patch --patches $NP --warmup-steps 6")
[ "$NP" -eq 4 ] && methods+=("usp:--ulysses 2 --ring 2")
[ "$NP" -eq 8 ] && methods+=("usp:--ulysses 4 --ring 2")
declare -A label=([ipc]="cuda ipc" [mpi]="host-staged" [nccl]="nccl" [ucx]="ucx one-sided, host-staged")
for t in $transports; do
  for m in "${methods[@]}"; do
    name=${m%%:*}
    # shellcheck disable=SC2086
    gen "$NP" --transport "$t" ${m#*:} --out "${t}_$name" > "${t}_$name.log"
    grep -q "transport: .*(${label[$t]})" "${t}_$name.log" || { cat "${t}_$name.log"; fail "$t $name: transport not reported"; }
    for i in 0 1; do
      "$H5_TOOL" compare "${t}_$name/img_$i.h5" "exact/img_$i.h5" /latent 1e-4 ||
        fail "$t $name on $NP GPU ranks differs from one rank (image $i)"
    done
    echo "ok: $t $name on $NP GPU ranks equals one rank"
  done
done
# bf16 activations: within bf16 rounding of the single-rank bf16 run.
DTYPE=bf16 gen "$NP" --transport ipc --ulysses "$NP" --out ulysses16 >/dev/null
"$H5_TOOL" compare ulysses16/img_0.h5 exact16/img_0.h5 /latent 2e-2
# The group decodes on its GPUs (bands of rows, halos and GroupNorm sums over the transport).
gen "$NP" --transport ipc --ulysses "$NP" --vae ae.h5 --out decoded >/dev/null
"$H5_TOOL" compare decoded/img_0.h5 exact/img_0.h5 /image 1e-4
# DistriFusion with fewer warm-up steps than steps: deterministic, and near the exact result.
gen "$NP" --transport ipc --parallel patch --patches "$NP" --warmup-steps 2 --out displaced >/dev/null
gen "$NP" --transport ipc --parallel patch --patches "$NP" --warmup-steps 2 --out displaced_again >/dev/null
for i in 0 1; do
  "$H5_TOOL" compare "displaced/img_$i.h5" "displaced_again/img_$i.h5" /latent 0 || fail "displaced run not deterministic"
done
psnr=$("$FRESCO" compare displaced/img_0.h5 exact/img_0.h5 | tail -1 | sed -n 's/.* PSNR \([-+0-9.eE]*\) dB.*/\1/p')
awk -v v="$psnr" 'BEGIN { exit !(v + 0 >= 120) }' || fail "displaced GPU run: PSNR $psnr dB against the exact run"
echo "ok: displaced on $NP GPU ranks: deterministic, PSNR $psnr dB against the exact run"

# Graphs that know when they are stale: two images of equal token count but other aspect ratios
# in one batch (512x144 and 768x96: 288 tokens each; on 4 patches rank 0 holds 96 tokens of
# both, the others 64/64/64 then 96/48/48), so the ranks' own shapes change on some ranks only
# and every rank must capture again together. Each image of the mixed batch equals the same
# image computed alone, on every capturable transport; a stale replay would hang or differ.
if [ "$NP" -eq 4 ]; then
  "$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 512 --height 144 --steps 6 mixed.h5 >/dev/null
  "$H5_TOOL" setint mixed.h5 /prompts/1 width 768
  "$H5_TOOL" setint mixed.h5 /prompts/1 height 96
  mix_transports="ipc"; [ "$gpus" -ge "$NP" ] && mix_transports="ipc nccl"
  for t in $mix_transports; do
    for m in "--parallel patch --patches 4 --warmup-steps 2" "--ulysses 4"; do
      tag=${t}_$(echo "$m" | tr -dc 'a-z0-9')
      # shellcheck disable=SC2086
      run_np 4 generate --backend cuda --dtype bf16 --weights weights.h5 --prompts mixed.h5 --transport $t $m \
        --comm-timeout 60 --out "mixed_$tag" --vae ae.h5 >/dev/null || fail "$t $m: mixed aspect ratios"
      # shellcheck disable=SC2086
      run_np 4 generate --backend cuda --dtype bf16 --weights weights.h5 --prompts mixed.h5 --transport $t $m \
        --comm-timeout 60 --slice 1/2 --out "alone_$tag" >/dev/null
      "$H5_TOOL" compare "mixed_$tag/img_1.h5" "alone_$tag/img_1.h5" /latent 0 ||
        fail "$t $m: image 1 after image 0 (other aspect ratio, decoded in between) differs from image 1 alone"
    done
  done
  echo "ok: mixed aspect ratios of equal token count in one batch, with decoding between images"
fi

# FP8 communication on GPU ranks (IPC): q/k/v and the stale K/V as e4m3 with per-token scales.
gen "$NP" --transport ipc --ulysses "$NP" --comm-dtype e4m3 --out fp8 >/dev/null
gen "$NP" --transport ipc --parallel patch --patches "$NP" --warmup-steps 2 --comm-dtype e4m3 --out fp8_patch >/dev/null
for run in fp8 fp8_patch; do
  psnr=$("$FRESCO" compare $run/img_0.h5 exact/img_0.h5 | tail -1 | sed -n 's/.* PSNR \([-+0-9.eE]*\) dB.*/\1/p')
  awk -v v="$psnr" 'BEGIN { exit !(v + 0 >= 120) }' || fail "$run on GPU ranks: PSNR $psnr dB against the exact run"
  echo "ok: $run on $NP GPU ranks: PSNR $psnr dB against the exact run"
done

# Head groups (Ulysses alone): flux-small's 4 heads over Ulysses 2 are exchanged and attended
# in 2 groups of one head, or in one (the automatic choice); both equal one rank.
"$FRESCO" init-weights --model flux-small --seed 3 small.h5 >/dev/null
"$FRESCO" make-prompts --model flux-small --count 2 --txt-len 8 --width 96 --height 80 --steps 3 \
  small_prompts.h5 >/dev/null
small() { local np=$1; shift; run_np "$np" generate --backend cuda --dtype f32 --weights small.h5 --prompts small_prompts.h5 "$@"; }
small 1 --out small_exact >/dev/null
for groups in 2 0; do
  small "$NP" --transport ipc --ulysses 2 --ring 1 --head-groups $groups --out "small_groups$groups" >/dev/null
  for i in 0 1; do
    "$H5_TOOL" compare "small_groups$groups/img_$i.h5" "small_exact/img_$i.h5" /latent 1e-4 ||
      fail "--head-groups $groups on $NP GPU ranks differs from one rank (image $i)"
  done
done
echo "ok: head groups (two, and automatic) on $NP GPU ranks equal one rank"

# FRESCO_COMM_TRACE: device timestamps of every exchange round, summarized per exchange.
FRESCO_COMM_TRACE=$PWD/trace gen "$NP" --transport ipc --ulysses "$NP" --out traced >/dev/null
grep -q '"to_consumer_runs"' trace.rank0.jsonl || { cat trace.rank0.jsonl; fail "no exchange trace"; }
python3 "$(dirname "$0")/../../scripts/comm-trace-summary.py" trace.rank*.jsonl > trace.txt || fail "trace summary"
echo "ok: exchange trace ($(grep -c . trace.rank0.jsonl) exchanges on rank 0)"

# A stopped (hung) or killed rank ends the job within 30 s.
"$FRESCO" make-prompts --model flux-small --count 2 --txt-len 8 --width 256 --height 256 --steps 2000 \
  long.h5 >/dev/null
#   ends_within TRANSPORT SIGNAL
ends_within() {
  "$MPIEXEC" -n "$NP" --oversubscribe "$FRESCO" generate --backend cuda --weights small.h5 --prompts long.h5 \
    --out "long_$1" --ulysses "$NP" --transport "$1" --comm-timeout 3 >"long_$1.log" 2>"long_$1.err" &
  local job=$! victim rc=0 start elapsed
  for _ in $(seq 300); do
    grep -q "image 0" "long_$1.log" 2>/dev/null && break
    [ "$(pgrep -P "$job" -x fresco | wc -l)" -ge "$NP" ] && grep -q "effective configuration" "long_$1.log" && sleep 3 && break
    sleep 0.2
  done
  victim=$(pgrep -P "$job" -x fresco | tail -1)
  [ -n "$victim" ] || fail "$1: no rank to signal"
  kill "-$2" "$victim"
  start=$(date +%s)
  for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$job" 2>/dev/null; then
    kill -CONT "$victim" 2>/dev/null; kill -9 "$job" 2>/dev/null
    cat "long_$1.err"; fail "$1: the job still runs 60 s after SIG$2 of one rank"
  fi
  wait "$job" || rc=$?
  elapsed=$(( $(date +%s) - start ))
  kill -CONT "$victim" 2>/dev/null || true
  [ "$rc" -ne 0 ] || fail "$1: the job ended with status 0 after SIG$2 of a rank"
  [ "$elapsed" -le 30 ] || fail "$1: the job took ${elapsed} s to end after SIG$2"
  echo "ok: $1: SIG$2 of one rank ended the job in ${elapsed} s (status $rc)"
}
ends_within ipc STOP
grep -q "hung or dead" long_ipc.err || { cat long_ipc.err; fail "ipc: no message names a hung or dead peer"; }
if [ "$gpus" -ge "$NP" ]; then ends_within nccl KILL; fi
# Host-staged UCX waits on the host, with the deadline (no watchdog).
if grep -q "^UCX: built" info.txt; then
  ends_within ucx STOP
  grep -q "hung or dead" long_ucx.err || { cat long_ucx.err; fail "ucx: no message names a hung or dead peer"; }
fi
echo "ok: GPU ranks at np $NP ($transports)"
