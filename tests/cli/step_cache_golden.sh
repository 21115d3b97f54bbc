# The step cache (docs/step-cache.md) against the independent PyTorch reference
# (tests/golden/make_cache_golden.py): `fresco generate` on flux-tiny, 64x64, 10 steps, CPU f32,
# one rank, for fbcache, dbcache (F 1, B 1, warm-up 2, at most 2 cached in a row), teacache and
# a forced dbcache pattern. Each case's options come from the golden file; the final latent must
# agree within 1e-4 (relative L2) and the decisions (cache_computed, in the result and the run
# record) must equal the reference's, whose thresholds keep every compared metric 10 % away
# from the threshold. --cache-threshold 0 gives the bits of --cache none for every method.
source "$(dirname "$0")/common.sh"
GOLDEN=$GOLDEN_DIR/cache_golden.h5

# gen DIR [options...]: one image into DIR, log in DIR.log.
gen() {
  local dir=$1; shift
  run_np 1 generate --weights "$GOLDEN_DIR/flux_tiny_weights.h5" \
    --prompts "$GOLDEN_DIR/cache_prompts.h5" --out "$dir" --backend cpu --dtype f32 "$@" \
    >"$dir.log" 2>&1 || { cat "$dir.log"; fail "generate $*"; }
}

# Without a cache: the reference of the generate loop itself (noise, timesteps, Euler).
gen none
"$H5_TOOL" compare none/img_0.h5 "$GOLDEN" /latent 1e-5 /none/latent ||
  fail "--cache none differs from the reference's uncached latent"

for case in fbcache dbcache teacache dbcache_pattern; do
  opts=$("$H5_TOOL" attr "$GOLDEN" options "/$case")
  want=$("$H5_TOOL" attr "$GOLDEN" cache_computed "/$case")
  echo "$case: $opts (reference decisions $want)"
  # shellcheck disable=SC2086  # the options are separate words
  gen "$case" $opts --record "$case.json"
  got=$("$H5_TOOL" attr "$case/img_0.h5" cache_computed) ||
    fail "$case: the result has no cache_computed attribute"
  [ "$got" = "$want" ] || fail "$case ($opts): fresco decided $got, the reference $want"
  grep -Eq "\"cache_computed\": *\"$want\"" "$case.json" ||
    { cat "$case.json"; fail "$case: the run record does not give cache_computed $want"; }
  "$H5_TOOL" compare "$case/img_0.h5" "$GOLDEN" /latent 1e-4 "/$case/latent" ||
    fail "$case ($opts): the latent differs from the reference"
done

# Threshold 0 never caches: every step computed, the bits of --cache none (dbcache without
# warm-up, so that every step after the first reaches the threshold rule).
zero_opts=(fbcache "--cache fbcache"
           dbcache "--cache dbcache --cache-first-blocks 1 --cache-last-blocks 1 --cache-warmup 0"
           teacache "--cache teacache")
for ((k = 0; k < ${#zero_opts[@]}; k += 2)); do
  method=${zero_opts[k]}
  # shellcheck disable=SC2086  # the options are separate words
  gen "zero_$method" ${zero_opts[k + 1]} --cache-threshold 0
  got=$("$H5_TOOL" attr "zero_$method/img_0.h5" cache_computed)
  [ "$got" = 1111111111 ] || fail "$method, threshold 0: decisions $got"
  "$H5_TOOL" compare "zero_$method/img_0.h5" none/img_0.h5 /latent 0 ||
    fail "$method, threshold 0: not bit-identical to --cache none"
done
echo "ok: step cache against the reference"
