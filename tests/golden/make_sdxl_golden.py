#!/usr/bin/env python3
"""Golden reference for the SDXL base U-Net ("sdxl-tiny" preset).

An independent plain-PyTorch implementation (no diffusers) written from the published architecture
as docs/sdxl.md states it: sinusoidal time embedding (cos first) through a two-layer SiLU MLP, plus
the "text_time" embedding of the pooled text and six size numbers; ResNet blocks (GroupNorm, SiLU,
3x3 convolutions, the time projection added per channel, a 1x1 shortcut where the width changes);
transformer stacks with linear projections (GroupNorm eps 1e-6, LayerNorm eps 1e-5, self-attention,
cross-attention on the text, GEGLU feed-forward with the exact GELU); stride-2 convolutions down,
nearest 2x + convolution up, skip concatenations; epsilon prediction, and classifier-free guidance
eps_u + g (eps_c - eps_u).

Run (needs torch, numpy, h5py; on the dev machine that is /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_sdxl_golden.py OUTDIR

Writes into OUTDIR:
    sdxl_tiny_weights.h5  float32 datasets, key "a.b.c" -> /a/b/c; root attrs
                          format="fresco-weights", format_version=1, model="sdxl-tiny"
    sdxl_tiny_golden.h5   inputs: /tokens [96, 4] (the 8x12 latent, pixel-major), /txt [7, 24],
                          /pooled [20], /negative_txt, /negative_pooled, /size [6], attrs
                          timestep (750), guidance (5.0), grid_h, grid_w;
                          outputs of the float64 forward: /eps_cond [96, 4] (no negative prompt)
                          and /eps_guided [96, 4]; and /eps_cond_bf16, /eps_guided_bf16 of the
                          bfloat16 eager forward (weights and every op's result rounded to
                          bfloat16, sums and statistics in float32): the bf16 tolerance's baseline;
                          the samplers: /noise [96, 4], and the guided float64 results of 4 steps
                          /sample_ddim, /sample_euler (leading spacing), /sample_euler_trailing,
                          with /timesteps_leading and /timesteps_trailing, attr sample_steps

Weights are drawn in float64 from torch.Generator seed 2024 in the order of param_shapes(),
rounded to float32 and widened back.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from fresco_weights_h5 import write_weights_file

# sdxl-tiny (src/model/sdxl_config.cpp)
WIDTHS, LAYERS, HEAD_DIM, PER_BLOCK, GROUPS = [16, 32], [0, 1], 8, 2, 4
LAT, CTX, POOLED, SIZE_DIM = 4, 24, 20, 8
TIME_PROJ, TEMB = WIDTHS[0], 4 * WIDTHS[0]
GRID_H, GRID_W, TXT = 8, 12, 7
TIMESTEP, GUIDANCE = 750, 5.0
SAMPLE_STEPS = 4
SEED = 2024
LEVELS = len(WIDTHS)


def up_channels(u, j):
    """(input channels, skip channels) of resnet j of up block u."""
    level = LEVELS - 1 - u
    skip = WIDTHS[max(level - 1, 0)] if j == PER_BLOCK else WIDTHS[level]
    if j > 0:
        return WIDTHS[level], skip
    return (WIDTHS[-1] if u == 0 else WIDTHS[level + 1]), skip


def param_shapes():
    s = {}

    def lin(p, o, i, bias=True):
        s[p + ".weight"] = (o, i)
        if bias:
            s[p + ".bias"] = (o,)

    def conv(p, o, i, k):
        s[p + ".weight"] = (o, i, k, k)
        s[p + ".bias"] = (o,)

    def norm(p, c):
        s[p + ".weight"] = (c,)
        s[p + ".bias"] = (c,)

    def resnet(p, i, o):
        norm(p + ".norm1", i)
        conv(p + ".conv1", o, i, 3)
        lin(p + ".time_emb_proj", o, TEMB)
        norm(p + ".norm2", o)
        conv(p + ".conv2", o, o, 3)
        if i != o:
            conv(p + ".conv_shortcut", o, i, 1)

    def transformer(p, c, layers):
        norm(p + ".norm", c)
        lin(p + ".proj_in", c, c)
        for k in range(layers):
            b = f"{p}.transformer_blocks.{k}"
            norm(b + ".norm1", c)
            for m in ("to_q", "to_k", "to_v"):
                lin(f"{b}.attn1.{m}", c, c, bias=False)
            lin(b + ".attn1.to_out.0", c, c)
            norm(b + ".norm2", c)
            lin(b + ".attn2.to_q", c, c, bias=False)
            lin(b + ".attn2.to_k", c, CTX, bias=False)
            lin(b + ".attn2.to_v", c, CTX, bias=False)
            lin(b + ".attn2.to_out.0", c, c)
            norm(b + ".norm3", c)
            lin(b + ".ff.net.0.proj", 8 * c, c)
            lin(b + ".ff.net.2", c, 4 * c)
        lin(p + ".proj_out", c, c)

    conv("conv_in", WIDTHS[0], LAT, 3)
    lin("time_embedding.linear_1", TEMB, TIME_PROJ)
    lin("time_embedding.linear_2", TEMB, TEMB)
    lin("add_embedding.linear_1", TEMB, POOLED + 6 * SIZE_DIM)
    lin("add_embedding.linear_2", TEMB, TEMB)
    ch = WIDTHS[0]
    for l in range(LEVELS):
        for j in range(PER_BLOCK):
            resnet(f"down_blocks.{l}.resnets.{j}", ch, WIDTHS[l])
            ch = WIDTHS[l]
            if LAYERS[l]:
                transformer(f"down_blocks.{l}.attentions.{j}", ch, LAYERS[l])
        if l + 1 < LEVELS:
            conv(f"down_blocks.{l}.downsamplers.0.conv", ch, ch, 3)
    resnet("mid_block.resnets.0", ch, ch)
    transformer("mid_block.attentions.0", ch, LAYERS[-1])
    resnet("mid_block.resnets.1", ch, ch)
    for u in range(LEVELS):
        level = LEVELS - 1 - u
        for j in range(PER_BLOCK + 1):
            i, sk = up_channels(u, j)
            resnet(f"up_blocks.{u}.resnets.{j}", i + sk, WIDTHS[level])
            if LAYERS[level]:
                transformer(f"up_blocks.{u}.attentions.{j}", WIDTHS[level], LAYERS[level])
        if u + 1 < LEVELS:
            conv(f"up_blocks.{u}.upsamplers.0.conv", WIDTHS[level], WIDTHS[level], 3)
    norm("conv_norm_out", WIDTHS[0])
    conv("conv_out", LAT, WIDTHS[0], 3)
    return s


def make_weights(gen):
    w = {}
    for name, shape in param_shapes().items():
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        if "norm" in name and name.endswith(".weight"):
            x = 1 + 0.2 * x
        elif name.endswith(".bias"):
            x = 0.1 * x
        else:
            x = x / math.sqrt(np.prod(shape[1:]))  # fan-in scaling: activations keep their size
        w[name] = x.to(torch.float32).to(torch.float64)
    return w


class Net:
    """The U-Net in one arithmetic: float64 throughout, or bfloat16 emulated by rounding the
    weights and every op's result to bfloat16 while the op itself runs in float32."""

    def __init__(self, w, bf16):
        self.bf16 = bf16
        self.dt = torch.float32 if bf16 else torch.float64
        self.W = {k: self.r(v.to(self.dt)) for k, v in w.items()}

    def r(self, x):
        return x.to(torch.bfloat16).to(torch.float32) if self.bf16 else x

    def lin(self, x, name, bias=True):
        y = x @ self.W[name + ".weight"].T
        return self.r(y + self.W[name + ".bias"] if bias else y)

    def conv(self, x, name, stride=1):
        wt = self.W[name + ".weight"]
        pad = wt.shape[-1] // 2
        return self.r(F.conv2d(x[None], wt, self.W[name + ".bias"], stride=stride, padding=pad)[0])

    def group_norm(self, x, name, eps):
        c = x.shape[0]
        g = x.reshape(GROUPS, -1)
        mean = g.mean(1, keepdim=True)
        var = ((g - mean) ** 2).mean(1, keepdim=True)
        y = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)
        return self.r(y * self.W[name + ".weight"].reshape(c, 1, 1) + self.W[name + ".bias"].reshape(c, 1, 1))

    def layer_norm(self, x, name):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return self.r((x - mean) / torch.sqrt(var + 1e-5) * self.W[name + ".weight"] + self.W[name + ".bias"])

    def silu(self, x):
        return self.r(x * torch.sigmoid(x))

    def sinusoid(self, v, n):
        half = n // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        return torch.cat([torch.cos(v * f), torch.sin(v * f)]).to(self.dt)

    def resnet(self, x, name, e_silu):
        h = self.conv(self.silu(self.group_norm(x, name + ".norm1", 1e-5)), name + ".conv1")
        h = self.r(h + self.lin(e_silu, name + ".time_emb_proj")[:, None, None])
        h = self.conv(self.silu(self.group_norm(h, name + ".norm2", 1e-5)), name + ".conv2")
        skip = self.conv(x, name + ".conv_shortcut") if name + ".conv_shortcut.weight" in self.W else x
        return self.r(skip + h)

    def attention(self, q, k, v, heads):
        n, c = q.shape
        d = c // heads
        qh, kh, vh = (t.reshape(t.shape[0], heads, d).transpose(0, 1) for t in (q, k, v))
        p = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        return self.r((p @ vh).transpose(0, 1).reshape(n, c))

    def transformer(self, x, name, layers, ctx):
        c, h, w = x.shape
        heads = c // HEAD_DIM
        z = self.group_norm(x, name + ".norm", 1e-6).reshape(c, h * w).T
        z = self.lin(z, name + ".proj_in")
        for k in range(layers):
            b = f"{name}.transformer_blocks.{k}"
            a = self.layer_norm(z, b + ".norm1")
            o = self.attention(self.lin(a, b + ".attn1.to_q", False), self.lin(a, b + ".attn1.to_k", False),
                               self.lin(a, b + ".attn1.to_v", False), heads)
            z = self.r(z + self.lin(o, b + ".attn1.to_out.0"))
            a = self.layer_norm(z, b + ".norm2")
            o = self.attention(self.lin(a, b + ".attn2.to_q", False), self.lin(ctx, b + ".attn2.to_k", False),
                               self.lin(ctx, b + ".attn2.to_v", False), heads)
            z = self.r(z + self.lin(o, b + ".attn2.to_out.0"))
            a = self.layer_norm(z, b + ".norm3")
            u, g = self.lin(a, b + ".ff.net.0.proj").chunk(2, dim=-1)
            gelu = self.r(0.5 * g * (1 + torch.erf(g / math.sqrt(2))))
            z = self.r(z + self.lin(self.r(u * gelu), b + ".ff.net.2"))
        out = self.lin(z, name + ".proj_out").T.reshape(c, h, w)
        return self.r(x + out)

    def eps(self, latent, timestep, ctx, pooled, size):
        """latent [4, h, w] -> predicted noise [4, h, w]."""
        e_t = self.lin(self.silu(self.lin(self.r(self.sinusoid(float(timestep), TIME_PROJ)[None]),
                                          "time_embedding.linear_1")), "time_embedding.linear_2")
        a = torch.cat([pooled.to(self.dt)] + [self.sinusoid(float(s), SIZE_DIM) for s in size])
        e_add = self.lin(self.silu(self.lin(self.r(a[None]), "add_embedding.linear_1")), "add_embedding.linear_2")
        e_silu = self.silu(self.r(e_t + e_add))[0]
        ctx = self.r(ctx.to(self.dt))
        x = self.conv(self.r(latent.to(self.dt)), "conv_in")
        skips = [x]
        for l in range(LEVELS):
            for j in range(PER_BLOCK):
                x = self.resnet(x, f"down_blocks.{l}.resnets.{j}", e_silu)
                if LAYERS[l]:
                    x = self.transformer(x, f"down_blocks.{l}.attentions.{j}", LAYERS[l], ctx)
                skips.append(x)
            if l + 1 < LEVELS:
                x = self.conv(x, f"down_blocks.{l}.downsamplers.0.conv", stride=2)
                skips.append(x)
        x = self.resnet(x, "mid_block.resnets.0", e_silu)
        x = self.transformer(x, "mid_block.attentions.0", LAYERS[-1], ctx)
        x = self.resnet(x, "mid_block.resnets.1", e_silu)
        for u in range(LEVELS):
            level = LEVELS - 1 - u
            for j in range(PER_BLOCK + 1):
                x = self.resnet(torch.cat([x, skips.pop()]), f"up_blocks.{u}.resnets.{j}", e_silu)
                if LAYERS[level]:
                    x = self.transformer(x, f"up_blocks.{u}.attentions.{j}", LAYERS[level], ctx)
            if u + 1 < LEVELS:
                x = F.interpolate(x[None], scale_factor=2.0, mode="nearest")[0]
                x = self.conv(x, f"up_blocks.{u}.upsamplers.0.conv")
        assert not skips
        return self.conv(self.silu(self.group_norm(x, "conv_norm_out", 1e-5)), "conv_out")

    def guided(self, latent, timestep, cond, uncond, size, g):
        e_c = self.eps(latent, timestep, *cond, size)
        e_u = self.eps(latent, timestep, *uncond, size)
        return self.r(e_u + g * self.r(e_c - e_u))


def alphas_cumprod():
    """SDXL's training schedule: scaled-linear betas 0.00085 .. 0.012 over 1000 steps."""
    betas = torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def schedule_timesteps(steps, spacing):
    """The timesteps of diffusers' schedulers with SDXL's config (steps_offset 1)."""
    if spacing == "leading":
        ratio = 1000 // steps
        return [int(t) + 1 for t in np.round(np.arange(0, steps) * ratio)[::-1]]
    ratio = 1000 / steps
    return [int(t) - 1 for t in np.round(np.arange(1000, 0, -ratio))]


def sample_ddim(eps_fn, noise, steps):
    """Deterministic DDIM (eta 0) in x_t space, set_alpha_to_one false: the step after t is
    t - 1000 // steps, and alpha_bar_0 stands in below timestep 0."""
    ab = alphas_cumprod()
    x = noise.clone()
    for t in schedule_timesteps(steps, "leading"):
        prev = t - 1000 // steps
        a_t, a_prev = ab[t], (ab[prev] if prev >= 0 else ab[0])
        eps = eps_fn(x, t)
        x0 = (x - torch.sqrt(1 - a_t) * eps) / torch.sqrt(a_t)
        x = torch.sqrt(a_prev) * x0 + torch.sqrt(1 - a_prev) * eps
    return x


def sample_euler(eps_fn, noise, steps, spacing):
    """Euler discrete (no churn): sigmas of the timesteps then 0; the model sees x / sqrt(sigma^2 + 1);
    the start is noise * sqrt(sigma_max^2 + 1), or sigma_max for trailing spacing (diffusers)."""
    ab = alphas_cumprod()
    ts = schedule_timesteps(steps, spacing)
    sigmas = [math.sqrt((1 - ab[t]) / ab[t]) for t in ts] + [0.0]
    x = noise * (sigmas[0] if spacing == "trailing" else math.sqrt(sigmas[0] ** 2 + 1))
    for i, t in enumerate(ts):
        eps = eps_fn(x / math.sqrt(sigmas[i] ** 2 + 1), t)
        x = x + (sigmas[i + 1] - sigmas[i]) * eps  # derivative (x - x0) / sigma is eps itself
    return x


def to_tokens(x):
    return x.reshape(LAT, -1).T.contiguous()  # [4, h, w] -> [h w, 4]


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    w = make_weights(gen)
    f32 = lambda t: t.to(torch.float32).to(torch.float64)  # inputs exactly representable in float32
    latent = f32(torch.randn((LAT, GRID_H, GRID_W), generator=gen, dtype=torch.float64))
    txt, neg_txt = (f32(torch.randn((TXT, CTX), generator=gen, dtype=torch.float64)) for _ in range(2))
    pooled, neg_pooled = (f32(torch.randn((POOLED,), generator=gen, dtype=torch.float64)) for _ in range(2))
    size = [8.0 * GRID_H, 8.0 * GRID_W, 0.0, 0.0, 8.0 * GRID_H, 8.0 * GRID_W]
    out = {}
    with torch.no_grad():
        for tag, net in (("", Net(w, False)), ("_bf16", Net(w, True))):
            out["eps_cond" + tag] = to_tokens(net.eps(latent, TIMESTEP, txt, pooled, size))
            out["eps_guided" + tag] = to_tokens(net.guided(latent, TIMESTEP, (txt, pooled), (neg_txt, neg_pooled),
                                                           size, GUIDANCE))

        # The samplers, guided, from one initial noise (float64 only).
        noise = f32(torch.randn((LAT, GRID_H, GRID_W), generator=gen, dtype=torch.float64))
        net = Net(w, False)
        eps_fn = lambda x, t: net.guided(x, t, (txt, pooled), (neg_txt, neg_pooled), size, GUIDANCE)
        samples = {"sample_ddim": sample_ddim(eps_fn, noise, SAMPLE_STEPS),
                   "sample_euler": sample_euler(eps_fn, noise, SAMPLE_STEPS, "leading"),
                   "sample_euler_trailing": sample_euler(eps_fn, noise, SAMPLE_STEPS, "trailing")}

    write_weights_file(os.path.join(outdir, "sdxl_tiny_weights.h5"), "sdxl-tiny", w)
    with h5py.File(os.path.join(outdir, "sdxl_tiny_golden.h5"), "w") as f:
        as32 = lambda t: t.to(torch.float32).numpy()
        f.create_dataset("tokens", data=as32(to_tokens(latent)))
        f.create_dataset("txt", data=as32(txt))
        f.create_dataset("negative_txt", data=as32(neg_txt))
        f.create_dataset("pooled", data=as32(pooled))
        f.create_dataset("negative_pooled", data=as32(neg_pooled))
        f.create_dataset("size", data=np.array(size, dtype=np.float32))
        for k, v in out.items():
            f.create_dataset(k, data=as32(v))
        f.create_dataset("noise", data=as32(to_tokens(noise)))
        for k, v in samples.items():
            f.create_dataset(k, data=as32(to_tokens(v)))
        for spacing in ("leading", "trailing"):
            f.create_dataset("timesteps_" + spacing, data=np.array(schedule_timesteps(SAMPLE_STEPS, spacing), np.float32))
        f.attrs["sample_steps"] = np.int64(SAMPLE_STEPS)
        f.attrs["timestep"] = np.int64(TIMESTEP)
        f.attrs["guidance"] = np.float64(GUIDANCE)
        f.attrs["grid_h"] = np.int64(GRID_H)
        f.attrs["grid_w"] = np.int64(GRID_W)
        f.attrs["generator"] = "tests/golden/make_sdxl_golden.py (PyTorch float64; bf16 eager baseline)"
        f.attrs["torch_version"] = str(torch.__version__)
    rel = lambda a, b: ((a.double() - b).norm() / b.norm()).item()
    print(f"sdxl-tiny: {len(w)} tensors, {sum(t.numel() for t in w.values())} parameters -> {outdir}")
    for k, v in samples.items():
        print(f"{k}: norm {v.norm().item():.6f}")
    print("timesteps:", schedule_timesteps(SAMPLE_STEPS, "leading"), schedule_timesteps(SAMPLE_STEPS, "trailing"))
    for k in ("eps_cond", "eps_guided"):
        print(f"{k}: norm {out[k].norm().item():.6f}; bf16 eager vs float64 {rel(out[k + '_bf16'], out[k]):.3e}")


if __name__ == "__main__":
    main()
