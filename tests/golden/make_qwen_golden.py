#!/usr/bin/env python3
"""Golden data for Fresco's Qwen-Image transformer: an independent float64 PyTorch reference of
one forward, written from docs/qwen-image.md (the published QwenImageTransformer2DModel's math:
dual-stream blocks, RMS-normed q/k, joint attention [text, image], MSRoPE, AdaLayerNormContinuous).

Builds the tiny preset "qwen-tiny" with random weights (torch.Generator seeded 4321, float64),
random inputs from the same generator, and writes

    qwen_tiny_weights.h5   one float32 dataset per diffusers key ('.' -> '/'), model qwen-tiny
    qwen_tiny_inputs.h5    /img [Limg, 64], /txt [Ltxt, 48] (no /y: no pooled vector),
                           attrs t, guidance (0, unused), grid_h, grid_w
    qwen_tiny_velocity.h5  /velocity float32 [Limg, 64]

The forward reads the float32-rounded weights and inputs, so the files describe it exactly.
The grid is 5 x 6 (an odd height checks the centring's rounding) and the text 7 tokens: 37 rows,
which divide neither 2 nor 4 ranks. Run from the repository root with /usr/bin/python3:

    /usr/bin/python3 tests/golden/make_qwen_golden.py tests/golden
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

from fresco_weights_h5 import write_weights_file

F64 = torch.float64
CFG = dict(d=64, H=2, layers=2, mlp_ratio=4, in_channels=64, out_channels=16, ctx=48,
           axes=(8, 12, 12), theta=10000.0)
SEED, GRID_H, GRID_W, LTXT, T = 4321, 5, 6, 7, 0.7
EPS = 1e-6


def param_specs(c):
    """(key, shape) in generation order, with the diffusers checkpoint's keys."""
    d, D, m = c["d"], c["d"] // c["H"], c["d"] * c["mlp_ratio"]
    out = []

    def lin(name, n_out, n_in):
        out.extend([(name + ".weight", (n_out, n_in)), (name + ".bias", (n_out,))])

    lin("img_in", d, c["in_channels"])
    out.append(("txt_norm.weight", (c["ctx"],)))
    lin("txt_in", d, c["ctx"])
    lin("time_text_embed.timestep_embedder.linear_1", d, 256)
    lin("time_text_embed.timestep_embedder.linear_2", d, d)
    for i in range(c["layers"]):
        b = "transformer_blocks.%d." % i
        lin(b + "img_mod.1", 6 * d, d)
        lin(b + "txt_mod.1", 6 * d, d)
        for p in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            lin(b + "attn." + p, d, d)
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            out.append((b + "attn." + n + ".weight", (D,)))
        lin(b + "attn.to_out.0", d, d)
        lin(b + "attn.to_add_out", d, d)
        for s in ("img_mlp", "txt_mlp"):
            lin(b + s + ".net.0.proj", m, d)
            lin(b + s + ".net.2", d, m)
    lin("norm_out.linear", 2 * d, d)
    lin("proj_out", 4 * c["out_channels"], d)
    return out


def make_weights(c, gen):
    """Linear weights 0.08 N(0,1), biases 0.05 N(0,1), norm scales 1 + 0.1 N(0,1); f32-rounded."""
    P = {}
    for key, shape in param_specs(c):
        z = torch.randn(shape, generator=gen, dtype=F64)
        if "norm" in key and len(shape) == 1:
            v = 1.0 + 0.1 * z
        elif key.endswith(".bias"):
            v = 0.05 * z
        else:
            v = 0.08 * z
        P[key] = v.to(torch.float32).to(F64)
    return P


def lin(P, name, x):
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def silu(x):
    return x * torch.sigmoid(x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x):
    """No affine parameters, biased variance."""
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + EPS)


def rms(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def time_embedding(t):
    """flip_sin_to_cos, shift 0, scale 1000: [cos(1000 t f_k), sin(1000 t f_k)], f_k = 1e4^(-k/128)."""
    f = torch.exp(-math.log(10000.0) * torch.arange(128, dtype=F64) / 128.0)
    a = 1000.0 * t * f
    return torch.cat([torch.cos(a), torch.sin(a)])


def msrope_positions(lt, h, w):
    """[Ltxt + h w, 3]: text on the diagonal from max(h//2, w//2), image centred (rows r - ceil(h/2))."""
    s = max(h // 2, w // 2)
    txt = [[s + j] * 3 for j in range(lt)]
    img = [[0, r - (h - h // 2), q - (w - w // 2)] for r in range(h) for q in range(w)]
    return torch.tensor(txt + img, dtype=F64)


def rope_angles(pos, axes, theta):
    """[L, D/2]: the pairs of axis 0, then 1, then 2; pair k of an axis of size a: p theta^(-2k/a)."""
    cols = []
    for a, size in enumerate(axes):
        k = torch.arange(size // 2, dtype=F64)
        cols.append(pos[:, a:a + 1] * theta ** (-2.0 * k / size))
    return torch.cat(cols, dim=1)


def rotate(x, phi):
    """x [L, H, D]: channels (2j, 2j+1) as the complex number x_2j + i x_2j+1, times e^(i phi_j)."""
    z = torch.complex(x[..., 0::2], x[..., 1::2]) * torch.polar(torch.ones_like(phi), phi)[:, None, :]
    return torch.stack([z.real, z.imag], dim=-1).reshape(x.shape)


def attention(q, k, v):
    """softmax(q k^T / sqrt(D)) v per head; [L, H, D] -> [L, H D]."""
    L, H, D = q.shape
    s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)
    p = torch.softmax(s, dim=-1)
    return torch.einsum("hqk,khd->qhd", p, v).reshape(L, H * D)


def block(P, b, img, txt, c, phi_img, phi_txt, H):
    D = img.shape[1] // H
    names = {"img": ("img_mod.1", "to_q", "to_k", "to_v", "norm_q", "norm_k", "to_out.0", "img_mlp"),
             "txt": ("txt_mod.1", "add_q_proj", "add_k_proj", "add_v_proj", "norm_added_q", "norm_added_k",
                     "to_add_out", "txt_mlp")}
    x = {"img": img, "txt": txt}
    phi = {"img": phi_img, "txt": phi_txt}
    mods, q, k, v = {}, {}, {}, {}
    for s in ("img", "txt"):
        mod, nq, nk, nv, rq, rk, _, _ = names[s]
        mods[s] = lin(P, b + mod, c).chunk(6)  # shift1, scale1, gate1, shift2, scale2, gate2
        h = layer_norm(x[s]) * (1 + mods[s][1]) + mods[s][0]
        L = h.shape[0]
        q[s] = rotate(rms(lin(P, b + "attn." + nq, h).reshape(L, H, D), P[b + "attn." + rq + ".weight"]), phi[s])
        k[s] = rotate(rms(lin(P, b + "attn." + nk, h).reshape(L, H, D), P[b + "attn." + rk + ".weight"]), phi[s])
        v[s] = lin(P, b + "attn." + nv, h).reshape(L, H, D)
    o = attention(torch.cat([q["txt"], q["img"]]), torch.cat([k["txt"], k["img"]]), torch.cat([v["txt"], v["img"]]))
    lt = txt.shape[0]
    outs = {"txt": o[:lt], "img": o[lt:]}
    for s in ("img", "txt"):
        sh1, sc1, g1, sh2, sc2, g2 = mods[s]
        y = x[s] + g1 * lin(P, b + "attn." + names[s][6], outs[s])
        mlp = b + names[s][7]
        hidden = gelu_tanh(lin(P, mlp + ".net.0.proj", layer_norm(y) * (1 + sc2) + sh2))
        x[s] = y + g2 * lin(P, mlp + ".net.2", hidden)
    return x["img"], x["txt"]


def forward(P, c, img, txt, t, gh, gw):
    temb = lin(P, "time_text_embed.timestep_embedder.linear_2",
               silu(lin(P, "time_text_embed.timestep_embedder.linear_1", time_embedding(t))))
    cond = silu(temb)
    x = lin(P, "img_in", img)
    y = lin(P, "txt_in", rms(txt, P["txt_norm.weight"]))
    phi = rope_angles(msrope_positions(txt.shape[0], gh, gw), c["axes"], c["theta"])
    lt = txt.shape[0]
    for i in range(c["layers"]):
        x, y = block(P, "transformer_blocks.%d." % i, x, y, cond, phi[lt:], phi[:lt], c["H"])
    scale, shift = lin(P, "norm_out.linear", cond).chunk(2)  # AdaLayerNormContinuous: scale first
    return lin(P, "proj_out", layer_norm(x) * (1 + scale) + shift)


def main(out_dir):
    gen = torch.Generator().manual_seed(SEED)
    P = make_weights(CFG, gen)
    img = torch.randn(GRID_H * GRID_W, CFG["in_channels"], generator=gen, dtype=F64).to(torch.float32).to(F64)
    txt = torch.randn(LTXT, CFG["ctx"], generator=gen, dtype=F64).to(torch.float32).to(F64)
    v = forward(P, CFG, img, txt, T, GRID_H, GRID_W)
    write_weights_file(os.path.join(out_dir, "qwen_tiny_weights.h5"), "qwen-tiny", P)
    with h5py.File(os.path.join(out_dir, "qwen_tiny_inputs.h5"), "w") as f:
        f.create_dataset("img", data=img.numpy().astype(np.float32))
        f.create_dataset("txt", data=txt.numpy().astype(np.float32))
        f.attrs["t"] = np.float64(T)
        f.attrs["guidance"] = np.float64(0.0)
        f.attrs["grid_h"] = np.int64(GRID_H)
        f.attrs["grid_w"] = np.int64(GRID_W)
    with h5py.File(os.path.join(out_dir, "qwen_tiny_velocity.h5"), "w") as f:
        f.create_dataset("velocity", data=v.numpy().astype(np.float32))
    print("qwen-tiny velocity: %s, rms %.4f" % (tuple(v.shape), float(v.pow(2).mean().sqrt())))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/golden/make_qwen_golden.py GOLDEN_DIR")
    main(sys.argv[1])
