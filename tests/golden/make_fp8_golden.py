#!/usr/bin/env python3
"""Same-precision reference for Fresco's FP8 mode (--dtype fp8, docs/performance.md "FP8").

The bf16 reference of make_bf16_golden.py (itself make_golden.py's independent forward with every
tensor in bfloat16) with the token linears (every double block's img/txt attn.qkv, attn.proj,
mlp.0, mlp.2 and every single block's linear1 and linear2) replaced by the documented FP8
product, written here from the docs, not from Fresco's code:

    W [N, K] (bf16)  -> per output channel n: s_w[n] = max_k |W[n,k]| / 448 (1 where the row is 0),
                        W_q = e4m3(W / s_w), rounded to nearest even, saturated at +-448;
    x [M, K] (bf16)  -> per token m, the same rule: s_x[m], x_q;
    y = (x_q W_q^T) * s_x[m] * s_w[n] + b[n], the product of the e4m3 values in float32,
        stored in bfloat16.

The e4m3 rounding is torch.float8_e4m3fn where this torch has it (checked against the
emulation below, which is used otherwise: Debian 12's torch 1.13 has no float8).

With --fp8-attention (attention_fp8 in src/backend/backend.hpp) the joint attention is replaced
too, again from the docs' rule: q, k and v each rounded to e4m3 with one scale for the whole
tensor (amax / 448), the scores of those values in float32 times both descales / sqrt(D), the
softmax in float32, its probabilities rounded to e4m3 at scale 448, their product with v's e4m3
values in float32 times v's descale / 448.

Writes flux_tiny_velocity_fp8.h5 and flux_tiny_velocity_fp8attn.h5 (/velocity float32
[Limg, 64]) and prints the relative L2 error of the bf16 and FP8 references against the float64
golden. Fresco's fp8 forwards are held to these files within bf16 noise
(tests/cli/fp8_forward.sh).

    /usr/bin/python3 tests/golden/make_fp8_golden.py tests/golden
"""
import math
import os
import re
import sys

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bf16_golden as bf16  # noqa: E402
import make_golden as ref  # noqa: E402

E4M3_MAX = 448.0
TOKEN_LINEAR = re.compile(r"^(double_blocks\.\d+\.(img|txt)_(attn\.qkv|attn\.proj|mlp\.0|mlp\.2)"
                          r"|single_blocks\.\d+\.linear[12])$")


def e4m3_emulated(x):
    """float32 -> the nearest e4m3 value (ties to even), saturated at +-448, as float32."""
    x = x.clamp(-E4M3_MAX, E4M3_MAX)
    a = x.abs()
    # The quantum of a's binade: 2^(e-3) for normal values (a >= 2^-6), 2^-9 below (subnormals).
    e = torch.floor(torch.log2(a.clamp(min=2.0 ** -6)))
    quantum = torch.pow(2.0, e - 3)
    return (torch.sign(x) * torch.round(a / quantum) * quantum).clamp(-E4M3_MAX, E4M3_MAX)


def e4m3(x):
    if hasattr(torch, "float8_e4m3fn"):
        native = x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).to(torch.float32)
        assert torch.equal(native, e4m3_emulated(x)), "e4m3 emulation differs from torch.float8_e4m3fn"
        return native
    return e4m3_emulated(x)


def quantize_rows(x):
    """x [R, C] float32 -> (q [R, C] e4m3 values as float32, s [R, 1]) with x ~ q * s."""
    amax = x.abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    return e4m3(x / s), s


def attention_fp8(q, k, v):
    """attention_fp8 (src/backend/backend.hpp): q, k, v each e4m3 with one scale per tensor, the
    scores in float32, P rounded to e4m3 at 448, then the product with v and the descales.
    q, k, v: [L, H, D] -> [L, H*D] in q's dtype."""
    L, H, D = q.shape
    (q8, sq), (k8, sk), (v8, sv) = (quantize_tensor(a.float()) for a in (q, k, v))
    q8, k8, v8 = (a.transpose(0, 1) for a in (q8, k8, v8))           # [H, L, D]
    s = (q8 @ k8.transpose(1, 2)) * (sq * sk / math.sqrt(D))         # [H, L, L] float32
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    p8 = e4m3(e / e.sum(dim=-1, keepdim=True) * E4M3_MAX)
    o = (p8 @ v8) * (sv / E4M3_MAX)                                  # [H, L, D]
    return o.transpose(0, 1).reshape(L, H * D).to(q.dtype)


def quantize_tensor(x):
    """x float32 -> (e4m3 values as float32, s) with x ~ q * s, one scale s for the tensor."""
    amax = x.abs().max()
    s = amax / E4M3_MAX if amax > 0 else torch.ones_like(amax)
    return e4m3(x / s), s


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/golden/make_fp8_golden.py GOLDEN_DIR")
    gdir = sys.argv[1]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    bf16_linear = ref.linear
    used = []

    def linear(P, name, x):
        if not TOKEN_LINEAR.match(name):
            return bf16_linear(P, name, x)
        used.append(name)
        wq, ws = quantize_rows(P[name + ".weight"].float())
        shape = x.shape
        xq, xs = quantize_rows(x.float().reshape(-1, shape[-1]))
        y = (xq @ wq.t()) * xs * ws.t() + P[name + ".bias"].float()
        return y.reshape(*shape[:-1], -1).to(x.dtype)

    vel_bf16 = bf16.bf16_forward(gdir, dev)
    ref.linear = linear
    vel = bf16.bf16_forward(gdir, dev)
    exact_attention = ref.attention
    ref.attention = attention_fp8
    vel_attn = bf16.bf16_forward(gdir, dev)
    ref.attention = exact_attention
    ref.linear = bf16_linear
    c = ref.CFG
    expected = 2 * (4 * c["depth"] * 2 + 2 * c["depth_single"])  # two fp8 forwards
    assert len(used) == expected, "%d token linears quantized, expected %d" % (len(used), expected)
    for name, v in (("flux_tiny_velocity_fp8.h5", vel), ("flux_tiny_velocity_fp8attn.h5", vel_attn)):
        with h5py.File(os.path.join(gdir, name), "w") as f:
            f.create_dataset("velocity", data=v.to(torch.float32).cpu().numpy())
            f.attrs["generator"] = "tests/golden/make_fp8_golden.py (PyTorch bfloat16 eager, e4m3 %s, %s%s)" % (
                "torch.float8_e4m3fn" if hasattr(torch, "float8_e4m3fn") else "emulated", dev,
                ", FP8 attention" if v is vel_attn else "")
            f.attrs["torch_version"] = str(torch.__version__)
    print("bf16 reference: relative L2 error against the float64 golden %.3e" % bf16.error_against_golden(gdir, vel_bf16))
    print("fp8 reference:  relative L2 error against the float64 golden %.3e" % bf16.error_against_golden(gdir, vel))
    print("fp8 + fp8 attention reference: relative L2 error against the float64 golden %.3e" %
          bf16.error_against_golden(gdir, vel_attn))
    print("fp8 vs bf16 reference: relative L2 %.3e" %
          ((vel.double() - vel_bf16.double()).norm() / vel_bf16.double().norm()).item())


if __name__ == "__main__":
    main()
