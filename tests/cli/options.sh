# The CLI: --help for each command, an INI config file with the same option names, the
# command line over the file, unknown options rejected (also in the file), the effective
# configuration echoed.
source "$(dirname "$0")/common.sh"
"$FRESCO" --help | grep -q "generate" || fail "top-level help lists no commands"
for cmd in generate forward init-weights convert make-prompts info; do
  "$FRESCO" "$cmd" --help > help.txt || fail "$cmd --help failed"
  grep -q "usage: .*$cmd" help.txt || fail "$cmd --help shows no usage"
  grep -q -- "--config" help.txt || fail "$cmd --help does not mention --config"
done
make_tiny_fixtures 1
cat > run.ini <<'INI'
# a run configuration
weights = weights.h5
prompts = prompts.h5
out = from_file
steps = 2
seed = 11
INI
"$FRESCO" generate --config run.ini --out from_cli --seed 12 > run.log
grep -q "steps = 2$" run.log || fail "config value not echoed"
grep -q "seed = 12$" run.log || fail "command line did not override the config file"
[ -e from_cli/img_0.h5 ] && [ ! -e from_file ] || fail "--out from the command line was not used"
[ "$("$H5_TOOL" attr from_cli/img_0.h5 steps)" = 2 ] || fail "steps from the config file not applied"
[ "$("$H5_TOOL" attr from_cli/img_0.h5 seed)" = 12 ] || fail "seed from the command line not applied"
echo "stepz = 3" >> run.ini
expect_error "unrecognised option 'stepz'" -- "$FRESCO" generate --config run.ini
expect_error "cannot read config file none.ini" -- "$FRESCO" generate --config none.ini
echo "options: ok"
