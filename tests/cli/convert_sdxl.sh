# The SDXL U-Net's two checkpoint layouts convert to exactly the weights they came from (bit for
# bit): Fresco's random weights written back out (tests/checkpoints/write_sdxl_layouts.py, an
# independent inverse of the sgm renaming) as diffusers' unet file (Fresco's own names) and as the
# original single file (sgm names under model.diffusion_model., a VAE and a text encoder tensor
# beside them, left out); --model auto finds sdxl-tiny in both.
source "$(dirname "$0")/common.sh"
CHECKPOINTS="$(dirname "$0")/../checkpoints"
same() { /usr/bin/python3 "$CHECKPOINTS/write_layouts.py" compare "$1" "$2" || fail "$1 is not $2 bit for bit"; }
"$FRESCO" init-weights --model sdxl-tiny --seed 8 --dtype f32 unet.h5 >/dev/null
(cd "$CHECKPOINTS" && /usr/bin/python3 write_sdxl_layouts.py "$WORK/unet.h5" "$WORK/layouts" 2 2 1)
"$FRESCO" convert layouts/diffusers.safetensors from_diffusers.h5 | tee out.log
grep -q "preset sdxl-tiny; diffusers U-Net" out.log || fail "convert did not find sdxl-tiny in the diffusers file"
same from_diffusers.h5 unet.h5
"$FRESCO" convert layouts/single_file.safetensors from_single.h5 | tee out.log
grep -q "preset sdxl-tiny; original SDXL single file (sgm names)" out.log || fail "convert did not find sdxl-tiny in the single file"
grep -q "keys under model.diffusion_model., prefix removed" out.log || fail "the prefix is not reported"
same from_single.h5 unet.h5
echo "convert: both SDXL U-Net layouts give the weights back bit for bit"
