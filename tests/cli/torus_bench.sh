# Benchmark (prints figures; asserts only that every run succeeds): the communication exposed
# per denoising step by Torus attention (Ulysses inside an emulated node, Torus across) and by a
# Ulysses all-to-all spanning the emulated nodes (and Ring, at np 4), without and with an
# emulated slow inter-node link (--emulate-link). flux-tiny, one 512x512 image (1040 tokens),
# 3 steps; each figure is the best of 3 runs of the mean over ranks of "waited on
# communication" (ms per step), which also holds load imbalance and, at np 4 on fewer cores or
# on a busy machine, scheduling noise (noise only adds: hence the best of 3).
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 16 --width 512 --height 512 --steps 3 \
  prompts.h5 >/dev/null

case $NP in
  2) rpn=1 torus=1x2 configs="ulysses:2x1" ;;
  4) rpn=2 torus=2x2 configs="ring:2x2 ulysses:4x1" ;;
esac
configs="torus:$torus $configs"
# Torus over the UCX one-sided transport too, where built.
"$FRESCO" info > info.txt
grep -q "^UCX: built" info.txt && configs="torus-ucx:$torus $configs"
links="off 0.2,100 0.05,100"

# Mean over ranks of the per-step wait of one run, and the MiB sent per step by rank 0.
measure() {
  local out=$1; shift
  rm -rf "$out"
  run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out "$out" --ranks-per-node "$rpn" --comm-timeout 60 --verbose "$@" \
    > "$out.log"
  awk '/rank [0-9]+: sent/ { for (i = 1; i <= NF; ++i) { if ($i == "sent" && mib == "") mib = $(i + 1);
                                                        if ($i == "communication") { w += $(i + 1); n++ } } }
       END { if (n == 0) exit 1; printf "%.2f %s\n", w / n, mib }' "$out.log"
}
best() { printf '%s\n' "$@" | sort -g | head -1; }

printf '\n%-10s %-7s %-10s  %s\n' "np $NP" layout "MiB/step" "exposed communication, ms/step (best of 3) by link"
printf '%-10s %-7s %-10s ' "" "" ""
for link in $links; do printf ' %14s' "$link"; done
printf '\n'
for cfg in $configs; do
  method=${cfg%:*} deg=${cfg#*:} U=${deg%x*} R=${deg#*x}
  schedule=ring transport=mpi
  [ "${method%-ucx}" = torus ] && schedule=torus
  [ "${method#*-}" = ucx ] && transport=ucx
  row=""
  for link in $links; do
    waits=()
    for rep in 1 2 3; do
      result=$(measure "run_${method}_${rep}" --ulysses "$U" --ring "$R" --inter-node "$schedule" --transport "$transport" \
                --emulate-link "$link") \
        || fail "$method $deg with link $link"
      waits+=("${result% *}")
      mib=${result#* }
    done
    row+=$(printf ' %14s' "$(best "${waits[@]}")")
  done
  printf '%-10s %-7s %-10s %s\n' "$method" "$deg" "$mib" "$row"
done
echo "(links: BW GB/s,latency us per exchange between emulated nodes of $rpn rank(s); off: shared memory)"
