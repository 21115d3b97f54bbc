#!/usr/bin/env python3
"""Golden reference for the FLUX.1 autoencoder decoder ("ae-tiny" preset).

An independent float64 PyTorch implementation of the math in
shared/spec/flux-vae-decoder.md ("the spec"), written from the spec alone.

Run (needs torch, numpy, h5py; on the dev machine that is /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_vae_golden.py OUTDIR

Writes into OUTDIR:
    ae_tiny_weights.h5  one float32 dataset per tensor, key "decoder.a.b" -> /decoder/a/b;
                        root attrs format="fresco-weights", format_version=1, model="ae-tiny"
    ae_tiny_decode.h5   /latent [16,10,6], /decoded [3,20,12] (raw conv_out output, before the
                        clamp), /image [3,20,12] = clamp((decoded+1)/2, 0, 1); attrs generator,
                        torch_version

Weights and latent are drawn in float64 from torch.Generator seed 4321 (weights in the order of
decoder_param_shapes(), weight before bias, then the latent), rounded to float32 and widened
back, so the float32 files hold exactly the values the float64 forward pass used.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

# ae-tiny preset (spec "Parameters", with ch shrunk to 32 and ch_mult shortened to (1, 2)).
CH = 32
CH_MULT = (1, 2)
NUM_RES_BLOCKS = 2          # -> NUM_RES_BLOCKS + 1 = 3 Resnets per level (spec: "for b in 0..2")
Z_CHANNELS = 16
OUT_CH = 3
GN_GROUPS = 32
GN_EPS = 1e-6
SCALE_FACTOR = 0.3611
SHIFT_FACTOR = 0.1159
LATENT_HW = (10, 6)         # h rows, w columns (deliberately non-square)
SEED = 4321


def decoder_param_shapes():
    """Ordered (key, shape, kind) list of every decoder tensor; kind is 'conv' or 'norm'."""
    out = []

    def conv(name, cin, cout, k):
        out.append((f"{name}.weight", (cout, cin, k, k), "conv"))
        out.append((f"{name}.bias", (cout,), "conv"))

    def norm(name, c):
        out.append((f"{name}.weight", (c,), "norm"))
        out.append((f"{name}.bias", (c,), "norm"))

    def resnet(name, cin, cout):
        norm(f"{name}.norm1", cin)
        conv(f"{name}.conv1", cin, cout, 3)
        norm(f"{name}.norm2", cout)
        conv(f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            conv(f"{name}.nin_shortcut", cin, cout, 1)

    c = CH * CH_MULT[-1]                      # spec: conv_in 16 -> ch * ch_mult[-1]
    conv("decoder.conv_in", Z_CHANNELS, c, 3)
    resnet("decoder.mid.block_1", c, c)
    norm("decoder.mid.attn_1.norm", c)
    for p in ("q", "k", "v", "proj_out"):
        conv(f"decoder.mid.attn_1.{p}", c, c, 1)
    resnet("decoder.mid.block_2", c, c)
    for level in reversed(range(len(CH_MULT))):
        cout = CH * CH_MULT[level]            # first Resnet of the level changes the width
        for b in range(NUM_RES_BLOCKS + 1):
            resnet(f"decoder.up.{level}.block.{b}", c, cout)
            c = cout
        if level != 0:
            conv(f"decoder.up.{level}.upsample.conv", c, c, 3)
    norm("decoder.norm_out", c)
    conv("decoder.conv_out", c, OUT_CH, 3)
    return out


def make_weights(gen):
    """Random float64 weights, rounded through float32 (see module docstring)."""
    w = {}
    for key, shape, kind in decoder_param_shapes():
        r = torch.randn(shape, generator=gen, dtype=torch.float64)
        if kind == "conv" and key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            t = r / math.sqrt(fan_in)
        elif kind == "conv":
            t = 0.05 * r
        elif key.endswith(".weight"):       # GroupNorm gamma
            t = 1.0 + 0.1 * r
        else:                               # GroupNorm beta
            t = 0.1 * r
        w[key] = t.to(torch.float32).to(torch.float64)
    return w


# ---- Pieces (spec "Pieces"); activations are [C, H, W] float64 ------------------------------

def group_norm(x, w, name):
    """GN: 32 groups, eps 1e-6, stats over (group channels) x H x W, biased variance, affine."""
    c, h, wd = x.shape
    g = x.reshape(GN_GROUPS, c // GN_GROUPS * h * wd)
    mean = g.mean(dim=1, keepdim=True)
    var = ((g - mean) ** 2).mean(dim=1, keepdim=True)
    y = ((g - mean) / torch.sqrt(var + GN_EPS)).reshape(c, h, wd)
    return y * w[f"{name}.weight"][:, None, None] + w[f"{name}.bias"][:, None, None]


def swish(x):
    return x * torch.sigmoid(x)


def conv(x, w, name):
    """conv3: 3x3 stride 1 zero padding 1; conv1: 1x1 (padding derived from kernel size)."""
    weight = w[f"{name}.weight"]
    y = F.conv2d(x[None], weight, w[f"{name}.bias"], stride=1, padding=weight.shape[-1] // 2)
    return y[0]


def resnet(x, w, name):
    h = conv(swish(group_norm(x, w, f"{name}.norm1")), w, f"{name}.conv1")
    h = conv(swish(group_norm(h, w, f"{name}.norm2")), w, f"{name}.conv2")
    skip = conv(x, w, f"{name}.nin_shortcut") if f"{name}.nin_shortcut.weight" in w else x
    return skip + h


def attn_block(x, w, name):
    """Single head over all H*W positions, head dim c, softmax(q k^T / sqrt(c)) v."""
    c, h, wd = x.shape
    hn = group_norm(x, w, f"{name}.norm")
    q, k, v = (conv(hn, w, f"{name}.{p}").reshape(c, h * wd).T for p in ("q", "k", "v"))
    scores = (q @ k.T) / math.sqrt(c)                   # [HW, HW]
    out = torch.softmax(scores, dim=-1) @ v             # [HW, c]
    out = out.T.reshape(c, h, wd)
    return x + conv(out, w, f"{name}.proj_out")


def upsample(x, w, name):
    """Nearest-neighbour 2x, then the 3x3 conv."""
    x = x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    return conv(x, w, f"{name}.conv")


def decode(z, w):
    """Spec "Decoder"; returns the raw conv_out output (before clamp)."""
    x = z / SCALE_FACTOR + SHIFT_FACTOR
    x = conv(x, w, "decoder.conv_in")
    x = resnet(x, w, "decoder.mid.block_1")
    x = attn_block(x, w, "decoder.mid.attn_1")
    x = resnet(x, w, "decoder.mid.block_2")
    for level in reversed(range(len(CH_MULT))):
        for b in range(NUM_RES_BLOCKS + 1):
            x = resnet(x, w, f"decoder.up.{level}.block.{b}")
        if level != 0:
            x = upsample(x, w, f"decoder.up.{level}.upsample")
    x = swish(group_norm(x, w, "decoder.norm_out"))
    return conv(x, w, "decoder.conv_out")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)

    gen = torch.Generator().manual_seed(SEED)
    w = make_weights(gen)
    z = torch.randn((Z_CHANNELS, *LATENT_HW), generator=gen, dtype=torch.float64)
    z = z.to(torch.float32).to(torch.float64)

    with torch.no_grad():
        decoded = decode(z, w)
    image = ((decoded + 1) / 2).clamp(0, 1)

    with h5py.File(os.path.join(outdir, "ae_tiny_weights.h5"), "w") as f:
        for key, t in w.items():
            f.create_dataset(key.replace(".", "/"), data=t.numpy().astype(np.float32))
        f.attrs["format"] = "fresco-weights"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["model"] = "ae-tiny"

    with h5py.File(os.path.join(outdir, "ae_tiny_decode.h5"), "w") as f:
        f.create_dataset("latent", data=z.numpy().astype(np.float32))
        f.create_dataset("decoded", data=decoded.numpy().astype(np.float32))
        f.create_dataset("image", data=image.numpy().astype(np.float32))
        f.attrs["generator"] = "tests/golden/make_vae_golden.py (PyTorch float64)"
        f.attrs["torch_version"] = str(torch.__version__)

    n_params = sum(t.numel() for t in w.values())
    print(f"ae-tiny: {len(w)} tensors, {n_params} parameters -> {outdir}")
    print(f"latent  {tuple(z.shape)}  norm {z.norm().item():.6f}")
    print(f"decoded {tuple(decoded.shape)}  norm {decoded.norm().item():.6f}  "
          f"min {decoded.min().item():.6f}  max {decoded.max().item():.6f}")
    print(f"image   {tuple(image.shape)}  norm {image.norm().item():.6f}  "
          f"mean {image.mean().item():.6f}")


if __name__ == "__main__":
    main()
