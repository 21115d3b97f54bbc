# Step caching on GPU ranks (skipped with exit 77 elsewhere; docs/step-cache.md): threshold 0 is
# bit-identical to --cache none; the head and the computed and cached tails replayed as graphs
# equal eager steps bit for bit; two ranks on the GPU(s) of this node (ipc, graphs) take one
# rank's decisions. Runs on one GPU: two ranks may share it.
source "$(dirname "$0")/common.sh"
"$FRESCO" info > info.txt
if ! grep -q "^backend cuda" info.txt; then
  echo "SKIP: no CUDA backend here ($(grep -E 'CUDA' info.txt | head -1))"; exit 77
fi
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 64 --height 64 --steps 10 \
  prompts.h5 >/dev/null
gen() { "$FRESCO" generate --backend cuda --weights weights.h5 --prompts prompts.h5 "$@" >/dev/null; }
decisions() { "$H5_TOOL" attr "$1" cache_computed; }
for dt in f32 bf16; do
  gen --dtype $dt --out none_$dt
  for cache in fbcache dbcache teacache; do
    gen --dtype $dt --out zero_${cache}_$dt --cache $cache --cache-threshold 0
    for i in 0 1; do "$H5_TOOL" compare zero_${cache}_$dt/img_$i.h5 none_$dt/img_$i.h5 /latent 0 >/dev/null; done
  done
  for g in on off; do
    gen --dtype $dt --cuda-graphs $g --out fb_${g}_$dt --cache fbcache --cache-threshold 0.45
    gen --dtype $dt --cuda-graphs $g --out db_${g}_$dt --cache dbcache --cache-first-blocks 1 \
      --cache-last-blocks 1 --cache-pattern 1101101011
    gen --dtype $dt --cuda-graphs $g --out tea_${g}_$dt --cache teacache --cache-threshold 0.5
  done
  for m in fb db tea; do
    for i in 0 1; do
      "$H5_TOOL" compare ${m}_on_$dt/img_$i.h5 ${m}_off_$dt/img_$i.h5 /latent 0 >/dev/null
      [ "$(decisions ${m}_on_$dt/img_$i.h5)" = "$(decisions ${m}_off_$dt/img_$i.h5)" ] || fail "$m $dt: graphs changed the decisions"
    done
    d=$(decisions ${m}_on_$dt/img_0.h5)
    [[ "$d" == *0*1* ]] || fail "$m $dt: image 0 computed '$d' (no cached step before a computed one)"
    echo "$dt $m: graphs = eager, decisions $d"
  done
done
# Two ranks of one image over ipc with graphs: the sequence method and DistriFusion (full_sync:
# exact) decide as one rank and compute its result.
for lay in "--ulysses 2" "--parallel patch --patches 2 --sync-mode full_sync"; do
  # shellcheck disable=SC2086
  run_np 2 generate --backend cuda --transport ipc --dtype f32 --weights weights.h5 --prompts prompts.h5 \
    --out two $lay --cache fbcache --cache-threshold 0.45 >/dev/null
  for i in 0 1; do
    [ "$(decisions two/img_$i.h5)" = "$(decisions fb_on_f32/img_$i.h5)" ] || fail "$lay: two ranks decided otherwise"
    "$H5_TOOL" compare two/img_$i.h5 fb_on_f32/img_$i.h5 /latent 1e-5 >/dev/null
  done
  rm -rf two
  echo "two ranks $lay: one rank's decisions and result"
done
