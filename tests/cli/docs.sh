# The documentation against the tree and the code: every repository path that README.md and
# docs/*.md cite in backquotes or links exists in a clone, and docs/file-formats.md gives the
# image result's format_version that `generate` writes.
# Argument: the source directory.
source "$(dirname "$0")/common.sh"
SRC=$1
missing=0
for doc in "$SRC"/README.md "$SRC"/docs/*.md "$SRC"/docs/*/*.md; do
  [ -e "$doc" ] || continue
  dir=$(dirname "$doc")
  # `path` and ](path) naming something under a top-level folder of the project (or shared/,
  # which a clone does not have); globs and {a,b} alternatives are expanded.
  while IFS=: read -r line cited; do
    path=${cited#\`}; path=${path#](}; path=${path%%#*}
    found=0
    for base in "$SRC" "$dir"; do
      for alt in $(eval echo "$base/${path//[ ;\$\`]/}" 2>/dev/null); do
        compgen -G "$alt" > /dev/null && found=1
      done
    done
    [ $found = 1 ] || { echo "${doc#$SRC/}:$line cites $path, which a clone does not have"; missing=1; }
  done < <(grep -noE '(`|\]\()(\.\./)?(src|io|mpi|cuda|jobs|tests|scripts|docs|fuzz|cmake|shared|spec|images)/[A-Za-z0-9_./{},*-]*[A-Za-z0-9_*}]' "$doc")
done
[ $missing = 0 ] || fail "documentation cites files that are not in the repository"

# The image result's version: the table rows and what generate writes.
make_tiny_fixtures 1
"$FRESCO" generate --weights weights.h5 --prompts prompts.h5 --out out --steps 1 > /dev/null
v=$("$H5_TOOL" attr out/img_0.h5 format_version)
grep -q "^| \[image result\](#image-result) | \`fresco-image\` | $v |" "$SRC/docs/file-formats.md" \
  || fail "the overview table of file-formats.md does not give image version $v"
sed -n '/^## Image result/,/^## /p' "$SRC/docs/file-formats.md" > image.md
grep -q "^| \`format_version\` | int64 | \`$v\`[ |]" image.md \
  || fail "the image result table of file-formats.md does not give format_version $v"
echo "docs: ok"
