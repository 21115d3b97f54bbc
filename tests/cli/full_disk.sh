# A full file system: every write is checked to the end. `generate`, `make-prompts`,
# `decode` and `init-weights` writing onto a full tmpfs fail with status 3 and one message
# naming the file and the cause, leave no file (final or temporary) and the file they were to
# replace as it was, and a rerun after space is freed completes the batch. Needs `mount -t tmpfs` (root, or a container allowing it):
# skipped with status 77 otherwise.
source "$(dirname "$0")/common.sh"
make_tiny_fixtures 2
mkdir mnt
if ! mount -t tmpfs -o size=1m tmpfs mnt 2>mount.err; then
  echo "SKIP: cannot mount a tmpfs here ($(cat mount.err)); the full-disk test needs root"
  exit 77
fi
trap 'umount "$WORK/mnt" 2>/dev/null; rm -rf "$WORK"' EXIT
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out ref >/dev/null
# Latents to decode later (one on the file system that fills up, to be completed in place):
# 128x96 gives /latent [16, 12, 16] and /image [3, 24, 32], each smaller than HDF5's 64 KiB
# sieve buffer, so their data reaches the file only when each dataset is closed.
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out lat --width 128 --height 96 >/dev/null
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out mnt/keep --width 128 --height 96 >/dev/null
mkdir mnt/out
# Fill the file system to the last byte (dd stops with "No space left on device").
dd if=/dev/zero of=mnt/fill bs=4k >/dev/null 2>&1 || true
no_files() {  # nothing but the filler: no final name, no temporary file
  local extra
  extra=$(find mnt -type f ! -name fill ! -path 'mnt/keep/img_*.h5')
  [ -z "$extra" ] || fail "files left on the full file system: $extra"
}
expect_status() {  # of the last expect_error
  local want=$1; shift
  [ "$LAST_RC" -eq "$want" ] || { cat err.log; fail "status $LAST_RC, expected $want: $*"; }
}

expect_error "cannot write mnt/out/img_0.h5.*No space left on device" -- \
  run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out mnt/out
expect_status 3 generate; no_files

expect_error "cannot write mnt/p.h5.*No space left on device" -- \
  "$FRESCO" make-prompts --model flux-tiny --count 2 --txt-len 5 mnt/p.h5
expect_status 3 make-prompts; no_files

expect_error "cannot write mnt/w.h5.*No space left on device" -- \
  "$FRESCO" init-weights --model flux-tiny mnt/w.h5
expect_status 3 init-weights; no_files

expect_error "mnt/d.*No space left on device" -- \
  "$FRESCO" decode --vae "$GOLDEN_DIR/ae_tiny_weights.h5" "$GOLDEN_DIR/ae_tiny_decode.h5" --out mnt/d
expect_status 3 decode; no_files

# Nearly full (16 KiB left): the file is created, and its data or its metadata at the close
# does not fit. The failed write or close is caught before anything is renamed.
truncate -s -16K mnt/fill
expect_error "cannot write mnt/out/img_0.h5.*No space left on device" -- \
  run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out mnt/out --width 256 --height 256
expect_status 3 generate near full; no_files
expect_error "cannot write mnt/p.h5.*No space left on device" -- \
  "$FRESCO" make-prompts --model flux-tiny --count 4 --txt-len 64 mnt/p.h5
expect_status 3 make-prompts near full; no_files
# decode's picture and result (each dataset under the sieve buffer): the close of a dataset is
# where the full disk shows; unchecked, a result whose /latent reads back as zeros was published
# with status 0. In place, the result it was to complete keeps its latent.
expect_error "cannot write mnt/d.h5.*No space left on device" -- \
  "$FRESCO" decode --vae "$GOLDEN_DIR/ae_tiny_weights.h5" lat/img_0.h5 --out mnt/d
expect_status 3 decode near full; no_files
expect_error "cannot write mnt/keep/img_1.h5.*No space left on device" -- \
  "$FRESCO" decode --vae "$GOLDEN_DIR/ae_tiny_weights.h5" mnt/keep/img_1.h5
expect_status 3 decode in place near full; no_files
"$H5_TOOL" compare mnt/keep/img_1.h5 lat/img_1.h5 /latent 0 || fail "decode damaged the result it was to complete"

# Space freed: the rerun completes the batch, equal to a run elsewhere.
rm mnt/fill
run_np 1 generate --weights weights.h5 --prompts prompts.h5 --out mnt/out | tee rerun.log
for i in 0 1; do "$H5_TOOL" compare "mnt/out/img_$i.h5" "ref/img_$i.h5" /latent 0; done
echo "full file system: every write failed cleanly with status 3; the rerun completed"
