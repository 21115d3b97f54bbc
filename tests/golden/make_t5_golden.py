#!/usr/bin/env python3
"""Golden reference for the T5 v1.1 encoder as FLUX.1 runs it ("t5-tiny" preset).

An independent plain-PyTorch implementation (no transformers) written from the published T5
v1.1 architecture as docs/text-encoders.md states it: RMS layer norm without mean or bias,
unscaled attention scores plus a bidirectional bucketed relative position bias taken from the
first layer's table and shared by all layers, gated-GELU FFN with the tanh GELU, no biases, a
final norm; no attention mask (the FLUX pipelines pass none).

Run (needs torch, numpy, h5py; on the dev machine that is /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_t5_golden.py OUTDIR

Writes into OUTDIR:
    t5_tiny_weights.h5  one float32 dataset per tensor, key "a.b.c" -> /a/b/c; root attrs
                        format="fresco-weights", format_version=1, model="t5-tiny"
    t5_tiny_golden.h5   /ids [20] (11 words, the end of sequence 1, pads 0, as the FLUX
                        pipelines pad; float32, exact, as Fresco's HDF5 reader takes floats), /hidden [20, 32] the float64 forward, /hidden_bf16 the
                        same forward in bfloat16 eager (weights and every op's result rounded to
                        bfloat16, norm statistics and softmax in float32, as transformers runs a
                        bf16 T5): the baseline of the bf16 tolerance; /buckets [20, 20] float32
                        (bucket of key j for query i)

Weights are drawn in float64 from torch.Generator seed 2929 in the order of param_shapes(),
rounded to float32 and widened back, so the float32 file holds exactly the values used.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

from fresco_weights_h5 import write_weights_file

# t5-tiny (src/model/text_encoder_config.cpp): attention 3 heads of 8 (narrower than the model),
# 4 buckets per direction up to distance 8, so 20 tokens reach the clamped buckets.
VOCAB, D, HEADS, DK, DFF, LAYERS = 512, 32, 3, 8, 48, 2
BUCKETS, MAX_DISTANCE, EPS = 8, 8, 1e-6
L = 20
SEED = 2929


def param_shapes():
    s = {"shared.weight": (VOCAB, D)}
    for n in range(LAYERS):
        b = f"encoder.block.{n}.layer."
        for p in "qkv":
            s[b + f"0.SelfAttention.{p}.weight"] = (HEADS * DK, D)
        s[b + "0.SelfAttention.o.weight"] = (D, HEADS * DK)
        if n == 0:
            s[b + "0.SelfAttention.relative_attention_bias.weight"] = (BUCKETS, HEADS)
        s[b + "0.layer_norm.weight"] = (D,)
        s[b + "1.DenseReluDense.wi_0.weight"] = (DFF, D)
        s[b + "1.DenseReluDense.wi_1.weight"] = (DFF, D)
        s[b + "1.DenseReluDense.wo.weight"] = (D, DFF)
        s[b + "1.layer_norm.weight"] = (D,)
    s["encoder.final_layer_norm.weight"] = (D,)
    return s


def make_weights(gen):
    w = {}
    for name, shape in param_shapes().items():
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        if name.endswith("layer_norm.weight"):
            x = 1 + 0.2 * x
        elif "relative_attention_bias" in name or name == "shared.weight":
            pass  # N(0, 1): embeddings and position biases of order one
        else:
            x = x / math.sqrt(shape[1])  # activations keep their scale
        w[name] = x.to(torch.float32).to(torch.float64)
    return w


def bucket(rel):
    """Bidirectional T5 bucket of relative positions rel = key - query (an int64 tensor)."""
    half = BUCKETS // 2
    exact = half // 2
    ret = (rel > 0).long() * half
    n = rel.abs()
    # The logarithmic part in float32 (as T5 computes it), truncated; distances past
    # MAX_DISTANCE land in the last bucket.
    large = exact + (torch.log(n.float() / exact) / math.log(MAX_DISTANCE / exact) * (half - exact)).long()
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return ret + torch.where(n < exact, n, large)


def forward(w, ids, dt):
    """The encoder in dtype dt (float64, or bfloat16 with float32 statistics and softmax)."""
    stat = torch.float64 if dt == torch.float64 else torch.float32
    W = {k: v.to(dt) for k, v in w.items()}

    def rms(x, g):
        xs = x.to(stat)
        y = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + EPS)
        return g * y.to(dt)

    def gelu_tanh(u):
        return 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u.pow(3))))

    pos = torch.arange(L)
    buckets = bucket(pos[None, :] - pos[:, None])                   # [L, L] (query i, key j)
    table = W["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    bias = table[buckets].permute(2, 0, 1)                           # [H, L, L]

    x = W["shared.weight"][ids]                                      # [L, D]
    for n in range(LAYERS):
        p = f"encoder.block.{n}.layer."
        a = rms(x, W[p + "0.layer_norm.weight"])
        q, k, v = (
            (a @ W[p + f"0.SelfAttention.{c}.weight"].T).view(L, HEADS, DK).transpose(0, 1) for c in "qkv")
        scores = q @ k.transpose(1, 2) + bias                       # [H, L, L], not scaled
        probs = torch.softmax(scores.to(stat), dim=-1).to(dt)
        o = (probs @ v).transpose(0, 1).reshape(L, HEADS * DK)
        x = x + o @ W[p + "0.SelfAttention.o.weight"].T
        a = rms(x, W[p + "1.layer_norm.weight"])
        h = gelu_tanh(a @ W[p + "1.DenseReluDense.wi_0.weight"].T) * (a @ W[p + "1.DenseReluDense.wi_1.weight"].T)
        x = x + h @ W[p + "1.DenseReluDense.wo.weight"].T
    return rms(x, W["encoder.final_layer_norm.weight"]), buckets


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    w = make_weights(gen)
    words = torch.randint(3, VOCAB, (11,), generator=gen)  # T5: 0 pad, 1 end, 2 unknown
    ids = torch.cat([words, torch.tensor([1]), torch.zeros(L - 12, dtype=torch.long)])
    with torch.no_grad():
        hidden, buckets = forward(w, ids, torch.float64)
        hidden_bf16, _ = forward(w, ids, torch.bfloat16)

    write_weights_file(os.path.join(outdir, "t5_tiny_weights.h5"), "t5-tiny", w)
    with h5py.File(os.path.join(outdir, "t5_tiny_golden.h5"), "w") as f:
        f.create_dataset("ids", data=ids.numpy().astype(np.float32))  # small integers, exact
        f.create_dataset("hidden", data=hidden.numpy().astype(np.float32))
        f.create_dataset("hidden_bf16", data=hidden_bf16.to(torch.float32).numpy())
        f.create_dataset("buckets", data=buckets.numpy().astype(np.float32))
        f.attrs["generator"] = "tests/golden/make_t5_golden.py (PyTorch float64; bf16 eager baseline)"
        f.attrs["torch_version"] = str(torch.__version__)
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    print(f"t5-tiny: {len(w)} tensors, {sum(t.numel() for t in w.values())} parameters -> {outdir}")
    print(f"ids {ids.tolist()}")
    print(f"hidden {tuple(hidden.shape)} norm {hidden.norm().item():.6f}; "
          f"bf16 eager vs float64: relative L2 {rel(hidden_bf16.double(), hidden):.3e}")


if __name__ == "__main__":
    main()
