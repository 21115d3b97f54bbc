# `fresco sweep` on CPU ranks (mpiexec, flux-tiny): one JSON record per run with the expected
# fields (version, commit, command line, model parameters), ms/step read from each run's record
# with the warm-up step left out, the model priced with generate's CPU defaults, valid PNG plots
# with the expected number of series drawn by scripts that run from their own folder,
# --plot-only redraws, a run whose record is missing or unreadable fails by name, and bad inputs
# (--predict-ranks without --ranks-per-node among them) get one clear error each.
source "$(dirname "$0")/common.sh"
"$FRESCO" init-weights --model flux-tiny --seed 3 weights.h5 >/dev/null
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot not installed (scripts/install-deps.sh installs it)"; exit 77; }

# Options from an INI file (--config), the rest on the command line.
cat > sweep.ini <<INI
methods = ulysses,ring,patch
ranks = 1,2
resolutions = 64x48,64x64
steps = 2
txt-len = 5
INI
"$FRESCO" sweep --config sweep.ini --weights weights.h5 --out study --threads 1 > sweep.log ||
  { cat sweep.log study/runs/*.log; fail "fresco sweep failed"; }
# 2 resolutions x (one 1-rank baseline + 3 methods at 2 ranks) = 8 records, all ok.
[ "$(wc -l < study/sweep.jsonl)" -eq 8 ] || { cat study/sweep.jsonl; fail "expected 8 JSON records"; }
# Every record has the fields (compact JSON with sorted keys, one record a line).
for key in method ranks resolution steps hardware ms_per_step tflops flops_per_step comm_wait_ms_per_step \
           comm_share bytes_sent_per_step peak_rss_mib model_ms_per_step threads_per_rank cpu; do
  [ "$(grep -c "\"$key\":" study/sweep.jsonl)" -eq 8 ] || fail "field $key missing from some records"
done
[ "$(grep -c '"status":"ok"' study/sweep.jsonl)" -eq 8 ] || fail "some runs failed"
grep -q '"ms_per_step":0[,}]\|"tflops":0[,}]' study/sweep.jsonl && fail "a zero time or rate"
for res in 64x48 64x64; do
  [ "$(grep "\"resolution\":\"$res\"" study/sweep.jsonl | grep -c '"method":"single".*"ranks":1,')" -eq 1 ] ||
    fail "no one-rank baseline at $res"
  for m in ulysses ring patch; do
    line=$(grep "\"resolution\":\"$res\"" study/sweep.jsonl | grep "\"method\":\"$m\"") ||
      fail "no $m record at $res"
    grep -q '"ranks":2,' <<<"$line" || fail "$m at $res: not 2 ranks"
    grep -q '"bytes_sent_per_step":0[,.]' <<<"$line" && fail "$m at $res: no bytes sent"
  done
done
grep '"method":"ulysses"' study/sweep.jsonl | grep -q '"ring":1,.*"ulysses":2' || fail "ulysses records: not U=2 x R=1"
# What ran and from which figures: each record names the version, commit, the sweep's command
# line and the model's parameters; its ms/step is the run record's steady state (steps: 2, so the
# second step alone: the first of each kind is warm-up), never the image's wall time; the model
# uses generate's CPU defaults (2 GB/s in a node, not NVLink's 283) at the one-rank rate.
python3 - study/sweep.jsonl <<'PY' || fail "the records do not carry what ran, or not the run records' steady-state steps"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    where = r["resolution"] + " " + r["method"]
    for key in ("version", "commit", "command_line", "settings", "run_command_line", "run_engine"):
        assert r.get(key), f"{where}: no {key}"
    assert r["command_line"].split()[1] == "sweep" and "--record" in r["run_command_line"], where
    p = r["model_parameters"]
    assert p["parameters"] > 0 and p["hidden"] == 64 and p["heads"] == 2 and p["depth"] > 0, f"{where}: {p}"
    run = json.load(open(r["run_record"]))
    assert run["schema"] == "fresco-run-record" and run["commit"] == r["commit"], where
    image, = run["images"]
    kinds, ms = image["step_kind"], image["step_ms"]
    steady = [t for i, t in enumerate(ms) if kinds[i] in kinds[:i]]
    assert r["steady_steps"] == len(steady) == 1, f"{where}: {r['steady_steps']} steady steps, kinds {kinds}"
    assert r["ms_per_step"] == steady[0], f"{where}: {r['ms_per_step']} ms/step, steps {ms}"
    assert "CPU rank defaults, 1 thread(s)" in r["model_machine"] and "links 2 GB/s in a node" in r["model_machine"], \
        f"{where}: model priced on {r['model_machine']}"
PY
# Valid PNGs, one series per method and resolution (the speed-up adds the ideal line, the model
# plot a model line beside each measurement).
declare -A series=([time]=6 [speedup]=7 [efficiency]=6 [comm_share]=6 [model]=12)
for p in "${!series[@]}"; do
  [ "$(head -c 8 "study/$p.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$p.png is not a PNG"
  [ "$(stat -c %s "study/$p.png")" -gt 2000 ] || fail "$p.png is too small to hold a plot"
  grep -q "wrote study/$p.png (${series[$p]} series)" sweep.log || { grep wrote sweep.log; fail "$p.png: expected ${series[$p]} series"; }
  [ "$(grep -c '^EOD$' "study/$p.gp")" -eq "${series[$p]}" ] || fail "$p.gp does not hold ${series[$p]} data blocks"
done
# The scripts name only their own folder's files: a copy of the study redraws in place.
grep -l "study/" study/*.gp && fail "a gnuplot script names the study's path"
cp -r study moved && rm moved/*.png
(cd moved && for p in time speedup efficiency comm_share model; do gnuplot "$p.gp" || exit 1; done) ||
  fail "a gnuplot script does not run from its own folder"
for p in time speedup efficiency comm_share model; do
  [ "$(stat -c %s "moved/$p.png")" -gt 2000 ] || fail "moved/$p.png was not redrawn in its folder"
done
# Redraw from the records, with another model bandwidth; the records are not touched.
cp study/sweep.jsonl before.jsonl
"$FRESCO" sweep --config sweep.ini --weights weights.h5 --out study --plot-only --intra-node-gbs 1 > redraw.log ||
  { cat redraw.log; fail "--plot-only failed"; }
cmp -s before.jsonl study/sweep.jsonl || fail "--plot-only changed the records"
grep -q "wrote study/model.png (12 series)" redraw.log || fail "--plot-only did not redraw"
# Planning beyond the sweep: the model lines run on to 4 and 8 ranks (3 methods x 2 resolutions).
"$FRESCO" sweep --config sweep.ini --weights weights.h5 --out study --plot-only --predict-ranks 4,8 \
  --ranks-per-node 2 > plan.log ||
  { cat plan.log; fail "--predict-ranks failed"; }
[ "$(grep -c "fresco sweep: model, .* on [48] ranks (.*): [0-9.e+-]* ms per step" plan.log)" -eq 12 ] ||
  { cat plan.log; fail "expected 12 predictions"; }
grep -q "model, ulysses 64x64 on 8 ranks (Ulysses 8 x Ring 1)" plan.log || fail "ulysses prediction: not U = 8"
grep -q "wrote study/model.png (12 series)" plan.log || fail "--predict-ranks changed the series"
[ "$(grep -c '^8 ' study/model.gp)" -eq 6 ] || fail "model.gp: no 8-rank point on each model line"
expect_error "option --predict-ranks: 'x' is not a positive rank count" -- \
  "$FRESCO" sweep --weights weights.h5 --out bad --predict-ranks 4,x
# Beyond the measured runs the node size decides the links: it must be declared.
expect_error "option --predict-ranks extrapolates .* declare the node size with --ranks-per-node" -- \
  "$FRESCO" sweep --config sweep.ini --weights weights.h5 --out study --plot-only --predict-ranks 4,8

# A run that exits 0 without its record, or with one the sweep cannot read, fails by name (the
# other runs go on; the sweep's status is 1). The launcher stand-in runs the real one, then
# removes or spoils the file after --record.
for spoil in 'rm -f' "printf %s '{\"schema\":\"fresco-run-record\"}' >"; do
  cat > launcher.sh <<SH
#!/bin/bash
"$MPIEXEC" "\$@"; rc=\$?
prev=; for a in "\$@"; do [ "\$prev" = --record ] && $spoil "\$a"; prev=\$a; done
exit \$rc
SH
  chmod +x launcher.sh
  rc=0
  MPIEXEC=$PWD/launcher.sh "$FRESCO" sweep --weights weights.h5 --out spoiled --ranks 1 --resolutions 64x48 \
    --steps 2 --txt-len 5 --no-plots > spoiled.log 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || { cat spoiled.log; fail "$spoil: a run without a readable record: exit $rc, not 1"; }
  case $spoil in
    rm*) why="no run record spoiled/runs/64x48_single_np1.json" ;;
    *) why="run record spoiled/runs/64x48_single_np1.json lacks a field the sweep reads" ;;
  esac
  grep -q "64x48_single_np1 ... FAILED: $why" spoiled.log || { cat spoiled.log; fail "$spoil: the failure does not say '$why'"; }
  tail -1 spoiled/sweep.jsonl | grep -q '"status":"failed"' || fail "$spoil: the record does not say failed"
  rm -rf spoiled
done

# Bad inputs: one clear error each, nothing run.
expect_error "unknown method 'diagonal'" -- "$FRESCO" sweep --weights weights.h5 --out bad --methods ring,diagonal
expect_error "4 ranks do not fit 64x48 with method patch" -- \
  "$FRESCO" sweep --weights weights.h5 --out bad --methods patch --ranks 1,4 --resolutions 64x48
expect_error "'two' is not a positive rank count" -- "$FRESCO" sweep --weights weights.h5 --out bad --ranks 1,two
expect_error "'100x100' is not WIDTHxHEIGHT" -- "$FRESCO" sweep --weights weights.h5 --out bad --resolutions 100x100
expect_error "option --steps must be at least 2: the first step is warm-up" -- \
  "$FRESCO" sweep --weights weights.h5 --out bad --steps 1
expect_error "launcher srun needs a Slurm allocation" -- \
  env -u SLURM_JOB_ID "$FRESCO" sweep --weights weights.h5 --out bad --launcher srun
expect_error "runs as one process" -- "$MPIEXEC" -n 2 --oversubscribe "$FRESCO" sweep --weights weights.h5 --out bad
expect_error "option --transport must be one of" -- "$FRESCO" sweep --weights weights.h5 --out bad --transport pigeon
[ ! -e bad/sweep.jsonl ] || fail "a refused sweep wrote records"
# The engine options reach every run and the records; random weights need no file.
"$FRESCO" sweep --weights random:1 --model flux-tiny --out engine --ranks 1 --resolutions 64x48 --steps 2 \
  --txt-len 8 --no-plots --dtype bf16 --comm-dtype e4m3 > engine.log
grep -q '"engine":{"backend":"auto","comm-dtype":"e4m3","dtype":"bf16","transport":"auto"}' engine/sweep.jsonl ||
  { cat engine/sweep.jsonl; fail "the engine options are not in the record"; }
grep -q '"status":"ok"' engine/sweep.jsonl || fail "the bf16 run on random weights failed"
echo "sweep: ok"
