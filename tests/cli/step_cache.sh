# Step caching (docs/step-cache.md) on NP ranks, every parallel method: all ranks of an image
# take the same decisions (they agree on the image's metric), and the result equals one rank's
# with the same decisions; a skipped step under DistriFusion's displaced attention is
# deterministic and near the exact run with the same decisions.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 64 --height 64 --steps 10 \
  prompts.h5 >/dev/null

# Thresholds that mix computed and cached steps on these weights (flux-tiny, seed 3: fbcache's
# ratio runs 0.38-0.60, teacache's rescaled distance about 0.23 a step); no ratio lies within
# 5 % of them, so the order of a sum cannot flip a decision.
caches=("fbcache --cache-threshold 0.45"
        "dbcache --cache-first-blocks 1 --cache-last-blocks 1 --cache-warmup 2 --cache-max-consecutive 2 --cache-threshold 0.45"
        "teacache --cache-threshold 0.5")
layouts=("--ulysses $NP" "--ring $NP" "--parallel patch --patches $NP --sync-mode full_sync")
[ "$NP" -eq 4 ] && layouts+=("--ulysses 2 --ring 2")

decisions() { "$H5_TOOL" attr "$1" cache_computed; }
for k in "${!caches[@]}"; do
  cache=${caches[$k]}
  # shellcheck disable=SC2086
  run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out "one_$k" --cache $cache >/dev/null
  for i in 0 1; do
    d=$(decisions "one_$k/img_$i.h5")
    [[ "$d" == *0* && "$d" == *1* ]] || fail "--cache $cache: image $i computed '$d' (no mix of computed and cached steps)"
  done
  for lay in "${layouts[@]}"; do
    out="par_${k}_$(tr -c 'a-z0-9' '_' <<<"$lay")"
    # shellcheck disable=SC2086
    run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out "$out" --cache $cache $lay >"$out.log" ||
      { cat "$out.log"; fail "--cache $cache $lay failed"; }
    for i in 0 1; do
      [ "$(decisions "$out/img_$i.h5")" = "$(decisions "one_$k/img_$i.h5")" ] ||
        fail "--cache $cache $lay: image $i decided $(decisions "$out/img_$i.h5"), one rank $(decisions "one_$k/img_$i.h5")"
      "$H5_TOOL" compare "$out/img_$i.h5" "one_$k/img_$i.h5" /latent 1e-5 >/dev/null ||
        fail "--cache $cache $lay: image $i differs from one rank's"
    done
    echo "np $NP --cache ${cache%% *} $lay: decisions and result of one rank"
  done
done

# DistriFusion, displaced: a cached step skips the middle layers, whose stale K/V stay those of
# the last step that computed them. Forced decisions (the metric reads stale activations, so it
# is not one rank's); deterministic; near the exact run with the same decisions.
pattern=1101101011
# shellcheck disable=SC2086
for run in a b; do
  run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out "displaced_$run" --parallel patch \
    --patches "$NP" --warmup-steps 2 --cache dbcache --cache-first-blocks 1 --cache-last-blocks 1 \
    --cache-pattern $pattern >/dev/null
done
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out exact_pattern --cache dbcache \
  --cache-first-blocks 1 --cache-last-blocks 1 --cache-pattern $pattern >/dev/null
for i in 0 1; do
  [ "$(decisions "displaced_a/img_$i.h5")" = "$pattern" ] || fail "displaced: image $i did not follow the pattern"
  "$H5_TOOL" compare "displaced_a/img_$i.h5" "displaced_b/img_$i.h5" /latent 0 >/dev/null ||
    fail "displaced with a cache: two runs differ"
  "$H5_TOOL" compare "displaced_a/img_$i.h5" "exact_pattern/img_$i.h5" /latent "${DISPLACED_CACHE_TOLERANCE:-5e-6}" ||
    fail "displaced with a cache: image $i too far from the exact run with the same decisions"
done
echo "np $NP DistriFusion displaced with dbcache: deterministic, follows $pattern, near the exact run"
