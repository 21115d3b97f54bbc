#!/usr/bin/env python3
"""Same-precision reference for Fresco's bf16 mode (flash-attention's tolerance rule).

Runs the independent PyTorch forward of make_golden.py on the flux-tiny golden inputs with
every weight, input and activation in bfloat16 (plain eager ops: each op reads bf16, computes
with PyTorch's usual f32 accumulation and stores bf16), and writes

    flux_tiny_velocity_bf16.h5   /velocity float32 [Limg, 64]

Fresco's bf16 forward is then held to: error(fresco bf16 vs float64 golden) <= a small
multiple of error(this file vs float64 golden). Needs torch and h5py (the GPU host has both);
uses the GPU when one is present.

    python3 tests/golden/make_bf16_golden.py tests/golden
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as ref  # noqa: E402

BF16 = torch.bfloat16


def bf16_forward(gdir, dev):
    """The reference forward on the golden inputs in bfloat16: the velocity (bf16 tensor on dev).
    make_fp8_golden.py runs it again with its FP8 linears patched into ref.linear."""
    c = ref.CFG
    with h5py.File(os.path.join(gdir, "flux_tiny_weights.h5"), "r") as f:
        P = {k: torch.tensor(np.array(f[k.replace(".", "/")]), device=dev).to(BF16)
             for k, _ in ref.param_specs(c)}
    with h5py.File(os.path.join(gdir, "flux_tiny_inputs.h5"), "r") as f:
        img, txt, y = (torch.tensor(np.array(f[n]), device=dev).to(BF16) for n in ("img", "txt", "y"))
        t, guidance = float(f.attrs["t"]), float(f.attrs["guidance"])
        gh, gw = int(f.attrs["grid_h"]), int(f.attrs["grid_w"])

    # The reference's float64 helpers made bf16: embeddings and RoPE tables computed as Fresco
    # does (double, stored f32), rotations stored in the activation dtype.
    temb64, phases64, rope64 = ref.temb, ref.rope_phases, ref.rope
    ref.temb = lambda s, dim=256: temb64(s, dim).to(dev).to(BF16)
    ref.rope_phases = lambda ids, axes, theta: phases64(ids.cpu(), axes, theta).to(dev).to(torch.float32)
    ref.rope = lambda x, phi: rope64(x, phi).to(x.dtype)

    ii, jj = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64),
                            indexing="ij")
    img_ids = torch.stack([torch.zeros_like(ii), ii, jj], dim=-1).reshape(gh * gw, 3)
    txt_ids = torch.zeros((txt.shape[0], 3), dtype=torch.float64)
    with torch.no_grad():
        vel = ref.forward(c, P, img, txt, y, t, guidance, img_ids, txt_ids)
    ref.temb, ref.rope_phases, ref.rope = temb64, phases64, rope64
    return vel


def error_against_golden(gdir, vel):
    """Relative L2 of a velocity against the float64 golden (flux_tiny_velocity.h5)."""
    with h5py.File(os.path.join(gdir, "flux_tiny_velocity.h5"), "r") as f:
        exact = torch.tensor(np.array(f["velocity"]), dtype=torch.float64)
    got = vel.to(torch.float64).cpu()
    return ((got - exact).norm() / exact.norm()).item()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/golden/make_bf16_golden.py GOLDEN_DIR")
    gdir = sys.argv[1]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    vel = bf16_forward(gdir, dev)
    with h5py.File(os.path.join(gdir, "flux_tiny_velocity_bf16.h5"), "w") as f:
        f.create_dataset("velocity", data=vel.to(torch.float32).cpu().numpy())
        f.attrs["generator"] = "tests/golden/make_bf16_golden.py (PyTorch bfloat16 eager, %s)" % dev
        f.attrs["torch_version"] = str(torch.__version__)
    print("bf16 reference: relative L2 error against the float64 golden %.3e" % error_against_golden(gdir, vel))


if __name__ == "__main__":
    main()
