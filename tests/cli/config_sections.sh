# INI files (--config) with a section per command: options before any section apply to every
# command that has them, [generate] only to generate, and so on; the command line still wins.
# Every error in the file names the file and its line.
source "$(dirname "$0")/common.sh"
make_tiny_fixtures 1
cat > run.ini <<'INI'
# shared by generate and bench
model = flux-tiny
threads = 1

[generate]
weights = weights.h5
prompts = prompts.h5
out = gen_out
steps = 2   # a comment after the value
seed = 5

[bench]
weights = random:1
width = 32
height = 32
txt-len = 3
steps = 5
INI
"$FRESCO" generate --config run.ini --seed 6 > gen.log
grep -q "steps = 2$" gen.log || fail "[generate] steps not applied"
[ "$("$H5_TOOL" attr gen_out/img_0.h5 steps)" = 2 ] || fail "steps from [generate] not in the result"
[ "$("$H5_TOOL" attr gen_out/img_0.h5 seed)" = 6 ] || fail "the command line did not win over [generate]"
"$FRESCO" bench --config run.ini --backend cpu --warmup 0 > bench.log
grep -q "steps = 5$" bench.log || fail "[bench] steps not applied to bench"
grep -q "model = flux-tiny$" bench.log || fail "an option outside a section not applied to bench"
# A command with no section of its own takes the shared options it has and ignores the rest.
"$FRESCO" info --config run.ini > info.log || fail "info refused a file written for other commands"

# Errors name the file and the line.
cp run.ini bad.ini; echo "stepz = 3" >> bad.ini   # line 18
expect_error "config file bad.ini line 18: unrecognised option 'stepz' in \[bench\]" -- \
  "$FRESCO" generate --config bad.ini
printf 'steps = 2\n[genrate]\nseed = 1\n' > section.ini
expect_error "config file section.ini line 2: unknown section \[genrate\]" -- \
  "$FRESCO" generate --config section.ini
grep -q "generate" err.log && grep -q "bench" err.log || fail "the known sections are not listed"
printf '[generate]\nsteps = many\n' > value.ini
expect_error "config file value.ini line 2: .*steps" -- \
  "$FRESCO" generate --config value.ini --weights weights.h5 --prompts prompts.h5
printf 'stepz = 1\n' > global.ini
expect_error "config file global.ini line 1: unrecognised option 'stepz' (no command has it" -- \
  "$FRESCO" generate --config global.ini
printf '[generate]\nsteps = 2\nsteps = 3\n' > twice.ini
expect_error "config file twice.ini line 3: option 'steps' given twice (also on line 2)" -- \
  "$FRESCO" generate --config twice.ini
printf '[generate]\nsteps\n' > syntax.ini
expect_error "config file syntax.ini line 2: expected 'name = value' or '\[command\]'" -- \
  "$FRESCO" generate --config syntax.ini
printf '[generate]\n%%canonical_option%% = 1\n' > percent.ini
expect_error "config file percent.ini line 2: unrecognised option" -- "$FRESCO" generate --config percent.ini
# A value holding one of Boost's message placeholders must not hang its error message.
printf '[generate]\nsteps = %%value%%\n' > pvalue.ini
expect_error "config file pvalue.ini line 2: invalid value '%value%' for option 'steps'" -- \
  timeout 20 "$FRESCO" generate --config pvalue.ini --weights weights.h5 --prompts prompts.h5
echo "config sections: ok"
