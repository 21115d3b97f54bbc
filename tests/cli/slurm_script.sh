# jobs/generate.sbatch runs end to end outside Slurm: a stand-in `srun` (mpiexec with 2 ranks)
# checks the script's options and environment; a second submission resumes (skips all). Every
# jobs/ script refuses a missing FRESCO, WEIGHTS, PROMPTS or VAE with one line before srun.
source "$(dirname "$0")/common.sh"
SCRIPT=${1:?path to jobs/generate.sbatch}
make_tiny_fixtures 3
mkdir bin
cat > bin/srun <<SH
#!/bin/bash
# Stand-in for Slurm's srun: accepts its options, starts the program on 2 MPI ranks.
touch "$PWD/srun.called"
while [ \$# -gt 0 ]; do
  case "\$1" in --mpi=pmix|--cpu-bind=*) shift ;; -*) echo "srun: unexpected \$1" >&2; exit 1 ;; *) break ;; esac
done
exec "$MPIEXEC" -n 2 --oversubscribe "\$@"
SH
chmod +x bin/srun
export PATH=$PWD/bin:$PATH SLURM_CPUS_PER_TASK=1 SLURM_JOB_NAME=fresco-test
export WEIGHTS=$PWD/weights.h5 PROMPTS=$PWD/prompts.h5 OUT=$PWD/out
bash "$SCRIPT" > first.log
ls out/img_0.h5 out/img_1.h5 out/img_2.h5 >/dev/null || fail "the batch script did not produce every image"
bash "$SCRIPT" > second.log
grep -q "3 image(s) already done, 0 to compute" second.log || fail "a resubmitted job recomputed images"
# The PARALLEL knob reaches fresco: both ranks on each image.
PARALLEL="--ulysses 2" OUT=$PWD/out_sp bash "$SCRIPT" > sp.log
grep -q "1 data-parallel group(s) of 2 rank(s): Ulysses 2 x Ring 1" sp.log || fail "PARALLEL was not applied"
for i in 0 1 2; do "$H5_TOOL" compare "out_sp/img_$i.h5" "out/img_$i.h5" /latent 1e-5 >/dev/null || fail "image $i differs"; done
# The VAE knob: pictures next to the latents.
VAE="$GOLDEN_DIR/ae_tiny_weights.h5" OUT=$PWD/out_png bash "$SCRIPT" > png.log
for i in 0 1 2; do [ -s "out_png/img_$i.png" ] || fail "VAE was not applied (img_$i.png missing)"; done

# A missing input: status 2, one line naming the knob, no srun (nor fresco sweep) started.
JOBS=$(dirname "$SCRIPT")
refused() {  # KNOB SCRIPT VAR=VALUE...
  local knob=$1 script=$2 rc=0; shift 2
  rm -f srun.called
  env "$@" OUT="$PWD/out_refused" bash "$JOBS/$script" > refused.out 2> refused.err || rc=$?
  [ "$rc" -eq 2 ] || { cat refused.out refused.err; fail "$script with a missing $knob ended with status $rc, expected 2"; }
  [ "$(wc -l < refused.err)" -eq 1 ] && grep -q "error: $knob=.* is not" refused.err ||
    { cat refused.out refused.err; fail "$script: expected one error line about $knob"; }
  [ ! -e srun.called ] && [ ! -e out_refused ] || fail "$script started work although $knob is missing"
  echo "ok: $script: $(cat refused.err)"
}
for s in generate night-batch; do
  refused FRESCO $s.sbatch FRESCO="$PWD/build/fresco"
  refused WEIGHTS $s.sbatch WEIGHTS="$PWD/weights/flux-dev.h5"
  refused PROMPTS $s.sbatch PROMPTS="$PWD/prompts-missing.h5"
  refused VAE $s.sbatch VAE="$PWD/ae.h5"
done
refused FRESCO sweep.sbatch FRESCO="$PWD/build/fresco"
refused WEIGHTS sweep.sbatch WEIGHTS="$PWD/weights/flux-dev.h5"
echo "slurm script: ok"
