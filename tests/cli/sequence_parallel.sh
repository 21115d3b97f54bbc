# Sequence parallelism equals the single-rank result (fp32, 1e-5 relative L2): `fresco forward`
# on the golden flux-tiny inputs (31 tokens: uneven shards; 2 heads: padded when U = 4) and
# `fresco generate`, for every layout that fits NP ranks, data-parallel factors included.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
W=$GOLDEN_DIR/flux_tiny_weights.h5
IN=$GOLDEN_DIR/flux_tiny_inputs.h5
"$FRESCO" forward --weights "$W" --inputs "$IN" --out single.h5 >/dev/null
make_tiny_fixtures 3
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out single_gen >/dev/null

case $NP in
  1) layouts="1x1" ;;
  2) layouts="2x1 1x2 1x1" ;;
  4) layouts="2x1 1x2 4x1 1x4 2x2" ;;
esac
for lay in $layouts; do
  U=${lay%x*} R=${lay#*x}
  run_np "$NP" forward --weights "$W" --inputs "$IN" --out "fw_$lay.h5" --ulysses "$U" --ring "$R" > "fw_$lay.log"
  echo "forward np $NP, Ulysses $U x Ring $R: $("$H5_TOOL" compare "fw_$lay.h5" single.h5 /velocity 1e-5)"
  "$H5_TOOL" compare "fw_$lay.h5" single.h5 /velocity 1e-5 >/dev/null || fail "forward $lay differs"
  "$H5_TOOL" compare "fw_$lay.h5" "$GOLDEN_DIR/flux_tiny_velocity.h5" /velocity 1e-5 >/dev/null \
    || fail "forward $lay differs from the golden reference"
  if [ $((U * R)) -gt 1 ]; then grep -q "waited on communication" "fw_$lay.log" || fail "no accounting"; fi
  run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out "gen_$lay" \
    --ulysses "$U" --ring "$R" > "gen_$lay.log"
  for i in 0 1 2; do
    "$H5_TOOL" compare "gen_$lay/img_$i.h5" "single_gen/img_$i.h5" /latent 1e-5 >/dev/null \
      || fail "generate $lay image $i differs"
  done
  [ "$("$H5_TOOL" attr "gen_$lay/img_0.h5" ulysses)" = "$U" ] || fail "ulysses attribute"
  echo "generate np $NP, Ulysses $U x Ring $R: 3 images match"
done

if [ "$NP" -eq 4 ]; then
  # Emulated two nodes of two ranks: Ulysses inside a node, Ring across.
  run_np 4 forward --weights "$W" --inputs "$IN" --out two_nodes.h5 --ulysses 2 --ring 2 \
    --ranks-per-node 2 > two_nodes.log
  grep -q "on 2 node(s); Ulysses groups within nodes" two_nodes.log || { cat two_nodes.log; fail "placement"; }
  "$H5_TOOL" compare two_nodes.h5 single.h5 /velocity 1e-5 || fail "two-node layout differs"
  # Automatic layout for one forward: all four ranks on the image.
  run_np 4 forward --weights "$W" --inputs "$IN" --out auto.h5 --ranks-per-node 2 > auto.log
  grep -q "1 data-parallel group(s) of 4 rank(s): Ulysses 2 x Ring 2" auto.log || { cat auto.log; fail "auto layout"; }
  # ... chosen by the performance model (2 heads: Ulysses 4 is no candidate), which says why.
  grep -q "automatic layout, performance model (CPU rank defaults" auto.log || { cat auto.log; fail "no model report"; }
  grep -q "chosen 1 group(s) x Ulysses 2 x Ring 2: .* ms per step of the batch" auto.log || fail "no prediction"
  grep -q "then   1 group(s) x Ulysses 1 x Ring 4" auto.log || fail "no runner-up"
  "$H5_TOOL" compare auto.h5 single.h5 /velocity 1e-5 >/dev/null || fail "auto layout differs"
  # A slow emulated link between the two nodes: the model prices it, Ulysses stays in a node.
  run_np 4 forward --weights "$W" --inputs "$IN" --out slow.h5 --ranks-per-node 2 --emulate-link 0.2,200 > slow.log
  grep -q "Ulysses 2 x Ring 2 on 2 node(s); Ulysses groups within nodes" slow.log || { cat slow.log; fail "slow link"; }
  grep -q "with the emulated link between nodes: .* 0.2 GB/s between nodes" slow.log || { cat slow.log; fail "link not modelled"; }
  # The user's degrees win over the model.
  run_np 4 forward --weights "$W" --inputs "$IN" --out given.h5 --ring 4 --ranks-per-node 2 > given.log
  grep -q "Ulysses 1 x Ring 4" given.log && ! grep -q "automatic layout" given.log || { cat given.log; fail "--ring 4 not honoured"; }
  # Impossible layouts are refused with one clear message.
  expect_error "3 ranks per image does not divide the 4 ranks" -- \
    run_np 4 forward --weights "$W" --inputs "$IN" --out bad.h5 --ulysses 3
  [ ! -e bad.h5 ] || fail "an impossible layout left an output"
  # The error names the option the user gave: --patches for the patch method.
  expect_error "--patches 3 ranks per image does not divide the 4 ranks" -- \
    run_np 4 forward --weights "$W" --inputs "$IN" --out bad.h5 --parallel patch --patches 3
  if grep -q -- "--ulysses" err.log; then cat err.log; fail "a --patches layout error names --ulysses"; fi
fi
