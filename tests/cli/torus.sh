# Torus attention (--inter-node torus) across emulated nodes equals the single-rank result
# (fp32, 1e-5 relative L2) for `fresco forward` on the golden flux-tiny inputs (31 tokens:
# uneven shards) and `fresco generate` (17-token sequences: odd shards), over the MPI transport
# and, where built, the UCX one-sided transport; with and without the emulated slow link.
source "$(dirname "$0")/common.sh"
NP=${1:?number of ranks}
W=$GOLDEN_DIR/flux_tiny_weights.h5
IN=$GOLDEN_DIR/flux_tiny_inputs.h5
"$FRESCO" forward --weights "$W" --inputs "$IN" --out single.h5 >/dev/null
make_tiny_fixtures 2
"$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 --width 64 --height 48 --steps 2 prompts.h5 >/dev/null
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out single_gen --ulysses 1 --ring 1 >/dev/null

transports="mpi"
"$FRESCO" info > info.txt
grep -q "^UCX: built" info.txt && transports="mpi ucx"

# U x R / ranks per node: Ulysses inside an emulated node, Torus across the nodes.
case $NP in
  2) layouts="1x2/1" ;;
  4) layouts="1x4/1 2x2/2" ;;
esac
for t in $transports; do
  for lay in $layouts; do
    deg=${lay%/*} rpn=${lay#*/} U=${deg%x*} R=${deg#*x}
    name="${t}_${U}x${R}_rpn$rpn"
    args=(--ulysses "$U" --ring "$R" --ranks-per-node "$rpn" --inter-node torus --transport "$t" --comm-timeout 60)
    run_np "$NP" forward --weights "$W" --inputs "$IN" --out "fw_$name.h5" "${args[@]}" > "fw_$name.log"
    grep -q "on $((NP / rpn)) node(s)" "fw_$name.log" || { cat "fw_$name.log"; fail "$name: not on $((NP / rpn)) nodes"; }
    [ "$t" = mpi ] || grep -q "(ucx one-sided)" "fw_$name.log" || { cat "fw_$name.log"; fail "$name: not over UCX"; }
    grep -q "Torus attention: K/V of the $R Ulysses groups in $((R - 1)) shifted pairwise steps" "fw_$name.log" \
      || { cat "fw_$name.log"; fail "$name: Torus not reported"; }
    echo "forward $name: $("$H5_TOOL" compare "fw_$name.h5" single.h5 /velocity 1e-5)"
    "$H5_TOOL" compare "fw_$name.h5" single.h5 /velocity 1e-5 >/dev/null || fail "forward $name differs"
    run_np "$NP" generate --weights weights.h5 --prompts prompts.h5 --out "gen_$name" "${args[@]}" > "gen_$name.log"
    for i in 0 1; do
      "$H5_TOOL" compare "gen_$name/img_$i.h5" "single_gen/img_$i.h5" /latent 1e-5 >/dev/null \
        || fail "generate $name image $i differs"
    done
    echo "generate $name: 2 images match"
  done
done

# Under the emulated slow link the result is the same, and the link shows in the layout report.
lay=${layouts##* } deg=${lay%/*} rpn=${lay#*/}
run_np "$NP" forward --weights "$W" --inputs "$IN" --out slow.h5 --ulysses "${deg%x*}" --ring "${deg#*x}" \
  --ranks-per-node "$rpn" --inter-node torus --emulate-link 0.5,200 > slow.log
grep -q "inter-node link 0.5 GB/s, 200 us per exchange (emulated)" slow.log || { cat slow.log; fail "no emulated link"; }
"$H5_TOOL" compare slow.h5 single.h5 /velocity 1e-5 >/dev/null || fail "forward under the emulated link differs"
echo "forward $lay under an emulated 0.5 GB/s, 200 us link: matches"

# DistriFusion's in-place all-gathers (its stale K/V, started in one layer and finished in the
# next) over UCX give the bits of the MPI transport.
if [ "$NP" -eq 4 ] && [ "$transports" = "mpi ucx" ]; then
  "$FRESCO" make-prompts --model flux-tiny --count 1 --txt-len 5 --width 64 --height 128 --steps 3 \
    patch_prompts.h5 >/dev/null
  for t in mpi ucx; do
    run_np 4 generate --weights weights.h5 --prompts patch_prompts.h5 --out "patch_$t" --parallel patch \
      --patches 4 --warmup-steps 1 --transport "$t" --comm-timeout 60 > "patch_$t.log"
  done
  "$H5_TOOL" compare patch_ucx/img_0.h5 patch_mpi/img_0.h5 /latent 0 || fail "DistriFusion over UCX differs"
  echo "DistriFusion over UCX: identical to MPI"
fi

# Bad values are refused with one message.
expect_error "option --inter-node must be ring or torus" -- \
  run_np "$NP" forward --weights "$W" --inputs "$IN" --out bad.h5 --inter-node mesh
expect_error "option --emulate-link must be BANDWIDTH_GBps,LATENCY_us" -- \
  run_np "$NP" forward --weights "$W" --inputs "$IN" --out bad.h5 --emulate-link 10
[ ! -e bad.h5 ] || fail "a refused run left an output"
