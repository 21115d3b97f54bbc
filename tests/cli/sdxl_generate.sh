# `fresco generate` with the SDXL U-Net (sdxl-tiny, one rank): a prompt batch of SDXL conditioning
# written as docs/file-formats.md shows (a prompt without and one with a negative prompt and
# explicit size numbers), Euler and DDIM, latents with their provenance; the same command twice
# gives the same bits; the options the U-Net does not take are refused by name.
source "$(dirname "$0")/common.sh"
"$FRESCO" init-weights --model sdxl-tiny --seed 4 unet.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import h5py
import numpy as np
rng = np.random.default_rng(5)
normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)
with h5py.File("prompts.h5", "w") as f:
    f.attrs["format"] = "fresco-prompts"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["model"] = "sdxl-tiny"
    f.attrs["width"], f.attrs["height"], f.attrs["steps"] = np.int64(64), np.int64(48), np.int64(3)
    for i in range(2):
        g = f.create_group(f"prompts/{i}")
        g["txt"], g["y"] = normal(7, 24), normal(20)          # [77, 2048] and [1280] for sdxl
        if i == 1:
            g["negative_txt"], g["negative_y"] = normal(7, 24), normal(20)
            g["size_cond"] = np.array([48, 64, 0, 0, 48, 64], np.float32)
PY
"$FRESCO" generate --weights unet.h5 --prompts prompts.h5 --out a --guidance 4 | tee a.log
grep -q "image 2/2 done" a.log || fail "generate did not report both images"
[ "$("$H5_TOOL" shape a/img_0.h5 /latent)" = "[4, 6, 8]" ] || fail "latent shape is not [4, 6, 8]"
[ "$("$H5_TOOL" attr a/img_0.h5 model)" = sdxl-tiny ] || fail "model attribute is not sdxl-tiny"
[ "$("$H5_TOOL" attr a/img_0.h5 sampler)" = "euler leading, conditional only" ] || fail "sampler of image 0"
[ "$("$H5_TOOL" attr a/img_1.h5 sampler)" = "euler leading, guided" ] || fail "sampler of image 1"
"$FRESCO" generate --weights unet.h5 --prompts prompts.h5 --out b --guidance 4 >/dev/null
for i in 0 1; do "$H5_TOOL" compare "a/img_$i.h5" "b/img_$i.h5" /latent 0; done
# DDIM ends at alpha_bar_0 instead of sigma 0: another result of the same steps.
"$FRESCO" generate --weights unet.h5 --prompts prompts.h5 --out c --guidance 4 --scheduler ddim >/dev/null
[ "$("$H5_TOOL" attr c/img_1.h5 sampler)" = "ddim leading, guided" ] || fail "sampler of the DDIM run"
! "$H5_TOOL" compare a/img_1.h5 c/img_1.h5 /latent 0 >/dev/null || fail "DDIM and Euler gave the same bits"
expect_error "leading spacing only" -- "$FRESCO" generate --weights unet.h5 --prompts prompts.h5 --out d \
  --scheduler ddim --timestep-spacing trailing
expect_error "no SDXL autoencoder" -- "$FRESCO" generate --weights unet.h5 --prompts prompts.h5 --out d --vae unet.h5
expect_error "one rank" -- run_np 2 generate --weights unet.h5 --prompts prompts.h5 --out d
echo "generate with sdxl-tiny: Euler and DDIM, guided and not, deterministic"
