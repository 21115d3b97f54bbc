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

Writes flux_tiny_velocity_fp8.h5 (/velocity float32 [Limg, 64]) and prints the relative L2
error of the bf16 and FP8 references against the float64 golden. Fresco's fp8 forward is held
to this file within bf16 noise (tests/cli/fp8_forward.sh).

    /usr/bin/python3 tests/golden/make_fp8_golden.py tests/golden
"""
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
    ref.linear = bf16_linear
    c = ref.CFG
    expected = 4 * c["depth"] * 2 + 2 * c["depth_single"]
    assert len(used) == expected, "%d token linears quantized, expected %d" % (len(used), expected)
    with h5py.File(os.path.join(gdir, "flux_tiny_velocity_fp8.h5"), "w") as f:
        f.create_dataset("velocity", data=vel.to(torch.float32).cpu().numpy())
        f.attrs["generator"] = "tests/golden/make_fp8_golden.py (PyTorch bfloat16 eager, e4m3 %s, %s)" % (
            "torch.float8_e4m3fn" if hasattr(torch, "float8_e4m3fn") else "emulated", dev)
        f.attrs["torch_version"] = str(torch.__version__)
    print("bf16 reference: relative L2 error against the float64 golden %.3e" % bf16.error_against_golden(gdir, vel_bf16))
    print("fp8 reference:  relative L2 error against the float64 golden %.3e" % bf16.error_against_golden(gdir, vel))
    print("fp8 vs bf16 reference: relative L2 %.3e" %
          ((vel.double() - vel_bf16.double()).norm() / vel_bf16.double().norm()).item())


if __name__ == "__main__":
    main()
