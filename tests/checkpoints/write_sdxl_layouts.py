"""Writes an SDXL U-Net weights file (Fresco's names, which are diffusers') back out as the two
checkpoints users have, for the `convert` test: diffusers' `unet/diffusion_pytorch_model.safetensors`
and the original single file's sgm names under `model.diffusion_model.`, with a VAE and a text
encoder tensor beside them as in `sd_xl_base_1.0.safetensors`.

Written from the published module names of Stability AI's sgm UNetModel (input_blocks /
middle_block / output_blocks, ResBlock's in_layers / emb_layers / out_layers / skip_connection,
Downsample's op, Upsample's conv), independently of Fresco's C++ mapping: the converter must undo it.

  write_sdxl_layouts.py WEIGHTS.h5 OUTDIR LEVELS PER_BLOCK ATTENTION_LEVELS
    (the preset's level count, resnets per down level and the levels with attention, e.g. 2 2 1)
    OUTDIR/diffusers.safetensors, OUTDIR/single_file.safetensors
"""
import os
import sys

import numpy as np

from write_layouts import read_weights, write_safetensors

RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
          "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


def sgm_names(levels, per_block, attention_levels):
    """sgm module prefix -> diffusers module prefix (resnets as (prefix, True))."""
    m = {"input_blocks.0.0": ("conv_in", False), "time_embed.0": ("time_embedding.linear_1", False),
         "time_embed.2": ("time_embedding.linear_2", False), "label_emb.0.0": ("add_embedding.linear_1", False),
         "label_emb.0.2": ("add_embedding.linear_2", False), "out.0": ("conv_norm_out", False),
         "out.2": ("conv_out", False), "middle_block.0": ("mid_block.resnets.0", True),
         "middle_block.1": ("mid_block.attentions.0", False), "middle_block.2": ("mid_block.resnets.1", True)}
    n = 1
    for level in range(levels):
        for j in range(per_block):
            m[f"input_blocks.{n}.0"] = (f"down_blocks.{level}.resnets.{j}", True)
            if level in attention_levels:
                m[f"input_blocks.{n}.1"] = (f"down_blocks.{level}.attentions.{j}", False)
            n += 1
        if level + 1 < levels:
            m[f"input_blocks.{n}.0.op"] = (f"down_blocks.{level}.downsamplers.0.conv", False)
            n += 1
    n = 0
    for u in range(levels):
        attention = (levels - 1 - u) in attention_levels
        for j in range(per_block + 1):
            m[f"output_blocks.{n}.0"] = (f"up_blocks.{u}.resnets.{j}", True)
            if attention:
                m[f"output_blocks.{n}.1"] = (f"up_blocks.{u}.attentions.{j}", False)
            if j == per_block and u + 1 < levels:
                m[f"output_blocks.{n}.{2 if attention else 1}.conv"] = (f"up_blocks.{u}.upsamplers.0.conv", False)
            n += 1
    return m


def main():
    src, out, levels, per_block = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    attention_levels = {int(a) for a in sys.argv[5].split(",")}
    sd = read_weights(src)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "diffusers.safetensors"), sd)
    single = {"first_stage_model.decoder.conv_in.bias": np.zeros(4, np.float32),
              "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias": np.zeros(8, np.float32)}
    used = set()
    for sgm, (diffusers, resnet) in sgm_names(levels, per_block, attention_levels).items():
        for name, t in sd.items():
            if not name.startswith(diffusers + "."):
                continue
            rest = name[len(diffusers) + 1:]
            if resnet:
                inner = next(k for k, v in RESNET.items() if rest.startswith(v + "."))
                rest = inner + rest[len(RESNET[inner]):]
            single["model.diffusion_model." + sgm + "." + rest] = t
            used.add(name)
    missing = set(sd) - used
    if missing:
        sys.exit(f"tensors without an sgm name: {sorted(missing)[:5]}")
    write_safetensors(os.path.join(out, "single_file.safetensors"), single)


if __name__ == "__main__":
    main()
