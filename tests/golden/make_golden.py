#!/usr/bin/env python3
"""Golden-data generator for Fresco: an independent PyTorch reference of the
FLUX.1 transformer (MMDiT) forward pass, written from shared/spec/flux-transformer.md.

It builds the tiny preset "flux-tiny" with random weights (torch.Generator seeded 1234,
float64), random inputs from the same generator, runs one forward in float64 on the CPU
with plain tensor ops (explicit matmul + softmax attention), and writes three HDF5 files:

    flux_tiny_weights.h5   one float32 dataset per checkpoint key ('.' -> '/')
    flux_tiny_inputs.h5    /img, /txt, /y (float32) + attrs t, guidance, grid_h, grid_w
    flux_tiny_velocity.h5  /velocity float32 [Limg, 64], the model output

The forward uses the float32-rounded weights and inputs (widened back to float64), so the
files describe the computation exactly.  Needs python3 with torch, numpy and h5py.

Run from the repository root:

    python3 tests/golden/make_golden.py tests/golden
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

F64 = torch.float64

# "Hyper-parameters" (spec): the small test preset, same structure as flux-dev.
CFG = dict(d=64, H=2, depth=2, depth_single=2, mlp_ratio=4, in_channels=64,
           context_in_dim=32, vec_in_dim=48, axes_dim=(4, 14, 14), theta=10000.0,
           guidance_embed=True)
SEED, GRID_H, GRID_W, LTXT, T, GUIDANCE = 1234, 4, 6, 7, 0.7, 3.5


def param_specs(c):
    """(key, shape) of every tensor, in generation order; keys are the checkpoint keys."""
    d, D, m = c["d"], c["d"] // c["H"], c["d"] * c["mlp_ratio"]
    spec = []

    def linear(name, n_out, n_in):
        spec.append((name + ".weight", (n_out, n_in)))
        spec.append((name + ".bias", (n_out,)))

    def scale(name):
        spec.append((name + ".scale", (D,)))

    linear("img_in", d, c["in_channels"])
    linear("time_in.in_layer", d, 256)
    linear("time_in.out_layer", d, d)
    linear("vector_in.in_layer", d, c["vec_in_dim"])
    linear("vector_in.out_layer", d, d)
    if c["guidance_embed"]:
        linear("guidance_in.in_layer", d, 256)
        linear("guidance_in.out_layer", d, d)
    linear("txt_in", d, c["context_in_dim"])
    for i in range(c["depth"]):
        for s in ("img", "txt"):
            p = "double_blocks.%d.%s_" % (i, s)
            linear(p + "mod.lin", 6 * d, d)
            linear(p + "attn.qkv", 3 * d, d)
            scale(p + "attn.norm.query_norm")
            scale(p + "attn.norm.key_norm")
            linear(p + "attn.proj", d, d)
            linear(p + "mlp.0", m, d)
            linear(p + "mlp.2", d, m)
    for i in range(c["depth_single"]):
        p = "single_blocks.%d." % i
        linear(p + "linear1", 3 * d + m, d)
        linear(p + "linear2", d, d + m)
        scale(p + "norm.query_norm")
        scale(p + "norm.key_norm")
        linear(p + "modulation.lin", 3 * d, d)
    linear("final_layer.linear", c["in_channels"], d)
    linear("final_layer.adaLN_modulation.1", 2 * d, d)
    return spec


def make_weights(c, gen):
    """Linear weight ~ N(0, 0.08), bias ~ N(0, 0.05), RMSNorm scale = 1 + 0.1 N(0, 1)."""
    P = {}
    for key, shape in param_specs(c):
        z = torch.randn(shape, generator=gen, dtype=F64)
        if key.endswith(".weight"):
            P[key] = 0.08 * z
        elif key.endswith(".bias"):
            P[key] = 0.05 * z
        else:
            P[key] = 1.0 + 0.1 * z
    return P


def f32_round(x):
    """Round to float32 and widen back, so the stored float32 files reproduce the forward."""
    return x.to(torch.float32).to(F64)


# ---- "Building blocks" (spec) --------------------------------------------------------
def linear(P, name, x):
    return x @ P[name + ".weight"].t() + P[name + ".bias"]


def silu(x):
    return x * torch.sigmoid(x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, eps=1e-6):
    """LN over the last dim (d), no affine, biased variance."""
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def rms_norm(x, scale, eps=1e-6):
    """RMS over the head dim D: x * rsqrt(mean(x^2) + eps) * scale."""
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * scale


def modulation(P, name, vec, n):
    """mod(vec; lin, n) = lin(silu(vec)) split in n chunks of d: (shift, scale, gate, ...)."""
    return linear(P, name, silu(vec)).chunk(n, dim=-1)


def attention(q, k, v):
    """softmax(q k^T / sqrt(D)) v per head, no mask. q, k, v: [L, H, D] -> [L, H*D]."""
    L, H, D = q.shape
    q, k, v = (a.transpose(0, 1) for a in (q, k, v))           # [H, L, D]
    s = (q @ k.transpose(1, 2)) / math.sqrt(D)                  # [H, L, L]
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)       # stable softmax
    p = e / e.sum(dim=-1, keepdim=True)
    return (p @ v).transpose(0, 1).reshape(L, H * D)


# ---- "Embeddings" and "RoPE (3 axes)" (spec) ----------------------------------------
def temb(s, dim=256):
    """[cos(1000 s f_k), sin(1000 s f_k)], f_k = exp(-ln(10000) k / 128), cos half first."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=F64) / half)
    a = 1000.0 * s * f
    return torch.cat([torch.cos(a), torch.sin(a)])


def mlp_embedder(P, name, x):
    return linear(P, name + ".out_layer", silu(linear(P, name + ".in_layer", x)))


def rope_phases(ids, axes_dim, theta):
    """ids [L, 3] -> phi [L, D/2]: pairs go to axis 0, then 1, then 2; omega = theta^(-2k/Da)."""
    parts = []
    for a, Da in enumerate(axes_dim):
        k = torch.arange(Da // 2, dtype=F64)
        omega = theta ** (-2.0 * k / Da)
        parts.append(ids[:, a:a + 1] * omega[None, :])
    return torch.cat(parts, dim=-1)


def rope(x, phi):
    """x [L, H, D]; consecutive pairs (x0, x1) -> (cos x0 - sin x1, sin x0 + cos x1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = torch.cos(phi)[:, None, :], torch.sin(phi)[:, None, :]
    return torch.stack([c * x0 - s * x1, s * x0 + c * x1], dim=-1).reshape(x.shape)


def split_qkv(u, H, D):
    """[L, 3d] -> q, k, v each [L, H, D]; weight rows ordered q|k|v, then head, then D."""
    u = u.reshape(u.shape[0], 3, H, D)
    return u[:, 0], u[:, 1], u[:, 2]


# ---- "Double-stream block i" (spec) --------------------------------------------------
def double_block(P, p, img, txt, vec, phi, H, D):
    streams = {"txt": txt, "img": img}
    mods, qs, ks, vs = {}, [], [], []
    for s in ("txt", "img"):  # text first in the joint sequence
        mods[s] = modulation(P, p + s + "_mod.lin", vec, 6)
        sh1, sc1 = mods[s][0], mods[s][1]
        x = (1.0 + sc1) * layer_norm(streams[s]) + sh1
        q, k, v = split_qkv(linear(P, p + s + "_attn.qkv", x), H, D)
        qs.append(rms_norm(q, P[p + s + "_attn.norm.query_norm.scale"]))
        ks.append(rms_norm(k, P[p + s + "_attn.norm.key_norm.scale"]))
        vs.append(v)
    q, k, v = torch.cat(qs), torch.cat(ks), torch.cat(vs)
    o = attention(rope(q, phi), rope(k, phi), v)
    lt = txt.shape[0]
    outs = {"txt": o[:lt], "img": o[lt:]}
    for s in ("txt", "img"):
        sh1, sc1, g1, sh2, sc2, g2 = mods[s]
        x = streams[s] + g1 * linear(P, p + s + "_attn.proj", outs[s])
        h = linear(P, p + s + "_mlp.0", (1.0 + sc2) * layer_norm(x) + sh2)
        streams[s] = x + g2 * linear(P, p + s + "_mlp.2", gelu_tanh(h))
    return streams["img"], streams["txt"]


# ---- "Single-stream block i" (spec) --------------------------------------------------
def single_block(P, p, x, vec, phi, H, D):
    d = H * D
    sh, sc, g = modulation(P, p + "modulation.lin", vec, 3)
    u = linear(P, p + "linear1", (1.0 + sc) * layer_norm(x) + sh)
    q, k, v = split_qkv(u[:, :3 * d], H, D)
    h = u[:, 3 * d:]
    q = rms_norm(q, P[p + "norm.query_norm.scale"])
    k = rms_norm(k, P[p + "norm.key_norm.scale"])
    o = attention(rope(q, phi), rope(k, phi), v)
    return x + g * linear(P, p + "linear2", torch.cat([o, gelu_tanh(h)], dim=-1))


# ---- Full forward: "Embeddings", blocks, "Output" (spec) ----------------------------
def forward(c, P, img, txt, y, t, guidance, img_ids, txt_ids):
    H = c["H"]
    D = c["d"] // H
    vec = mlp_embedder(P, "time_in", temb(t))
    if c["guidance_embed"]:
        vec = vec + mlp_embedder(P, "guidance_in", temb(guidance))
    vec = vec + mlp_embedder(P, "vector_in", y)
    img = linear(P, "img_in", img)
    txt = linear(P, "txt_in", txt)
    phi = rope_phases(torch.cat([txt_ids, img_ids]), c["axes_dim"], c["theta"])
    for i in range(c["depth"]):
        img, txt = double_block(P, "double_blocks.%d." % i, img, txt, vec, phi, H, D)
    x = torch.cat([txt, img])
    for i in range(c["depth_single"]):
        x = single_block(P, "single_blocks.%d." % i, x, vec, phi, H, D)
    img = x[txt.shape[0]:]
    shift, scale = modulation(P, "final_layer.adaLN_modulation.1", vec, 2)
    return linear(P, "final_layer.linear", (1.0 + scale) * layer_norm(img) + shift)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/golden/make_golden.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    c = CFG
    assert sum(c["axes_dim"]) == c["d"] // c["H"] and all(a % 2 == 0 for a in c["axes_dim"])

    gen = torch.Generator().manual_seed(SEED)
    P = {k: f32_round(v) for k, v in make_weights(c, gen).items()}
    limg = GRID_H * GRID_W
    img = f32_round(torch.randn((limg, c["in_channels"]), generator=gen, dtype=F64))
    txt = f32_round(torch.randn((LTXT, c["context_in_dim"]), generator=gen, dtype=F64))
    y = f32_round(torch.randn((c["vec_in_dim"],), generator=gen, dtype=F64))
    # "Inputs of one forward": img_ids (0, i, j) for token i*grid_w + j; txt_ids zeros.
    ii, jj = torch.meshgrid(torch.arange(GRID_H, dtype=F64), torch.arange(GRID_W, dtype=F64),
                            indexing="ij")
    img_ids = torch.stack([torch.zeros_like(ii), ii, jj], dim=-1).reshape(limg, 3)
    txt_ids = torch.zeros((LTXT, 3), dtype=F64)

    with torch.no_grad():
        vel = forward(c, P, img, txt, y, T, GUIDANCE, img_ids, txt_ids)

    f32 = lambda a: a.to(torch.float32).numpy()
    with h5py.File(os.path.join(outdir, "flux_tiny_weights.h5"), "w") as f:
        f.attrs["format"] = "fresco-weights"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["model"] = "flux-tiny"
        for key, _ in param_specs(c):
            f.create_dataset(key.replace(".", "/"), data=f32(P[key]))
    with h5py.File(os.path.join(outdir, "flux_tiny_inputs.h5"), "w") as f:
        f.create_dataset("img", data=f32(img))
        f.create_dataset("txt", data=f32(txt))
        f.create_dataset("y", data=f32(y))
        f.attrs["t"] = np.float64(T)
        f.attrs["guidance"] = np.float64(GUIDANCE)
        f.attrs["grid_h"] = np.int64(GRID_H)
        f.attrs["grid_w"] = np.int64(GRID_W)
    with h5py.File(os.path.join(outdir, "flux_tiny_velocity.h5"), "w") as f:
        f.create_dataset("velocity", data=f32(vel))
        f.attrs["generator"] = "tests/golden/make_golden.py (PyTorch float64)"
        f.attrs["torch_version"] = str(torch.__version__)

    n_params = sum(v.numel() for v in P.values())
    print("flux-tiny: %d tensors, %d parameters" % (len(P), n_params))
    print("velocity %s, norm %.12g" % (tuple(vel.shape), vel.norm().item()))
    print("velocity[0, :4] =", [float("%.9g" % v) for v in vel[0, :4].tolist()])
    print("wrote", outdir)


if __name__ == "__main__":
    main()
